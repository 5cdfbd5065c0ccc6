/* s3/sigv4.h - AWS Signature Version 4 (header and query/presigned forms), S3 rules: the path
 * is URI-encoded once and never normalised. Pure functions on strings: no I/O, no state,
 * thread-safe. Hashes and HMACs come from OpenSSL.
 * In:      a request as method, raw (unencoded) path, query string (components may be raw or
 *          percent-encoded: they are decoded and re-encoded canonically), the headers to sign
 *          (the caller adds host, x-amz-date, x-amz-content-sha256, x-amz-security-token), and
 *          the payload hash.
 * Out:     the Authorization header value (or the presigned query) plus, for tests and DEBUG
 *          logs, the canonical request and string-to-sign. Output buffers belong to the caller
 *          (struct sigv4_out: sigv4_out_init() -> sigv4_out_free()).
 * Errors:  0 or a positive errno (ENOMEM, EMSGSIZE, EINVAL for malformed input) with *err.
 * Spec:    docs.aws.amazon.com/general/latest/gr/sigv4_signing.html; vectors in
 *          ../shared/vectors/sigv4 and s3-examples.md (tests/unit/test_sigv4.c). */
#ifndef BFS_S3_SIGV4_H
#define BFS_S3_SIGV4_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"

#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SIGV4_DATE_LEN 16 /* "20150830T123600Z" */

struct sigv4_header {
    const char *name;  /* any case; lower-cased for signing */
    const char *value; /* trimmed, inner runs of whitespace collapsed for signing */
};

struct sigv4_key {
    const char *access_key_id;
    const char *secret_access_key;
    const char *region;
    const char *service; /* "s3" */
};

struct sigv4_request {
    const char *method;
    const char *path;  /* raw, starts with '/'; encoded per byte except unreserved and '/' */
    const char *query; /* "a=b&c" or NULL/"" for none; '+' is a literal plus */
    const struct sigv4_header *headers;
    size_t n_headers;
    const char *payload_hash; /* lower-case hex SHA-256, or "UNSIGNED-PAYLOAD" */
    const char *amz_date;     /* "YYYYMMDDTHHMMSSZ" */
};

struct sigv4_out {
    struct buf canonical_request;
    struct buf string_to_sign;
    struct buf authorization; /* header form: the Authorization value; query form: the full
                                 canonical query including X-Amz-Signature */
    char signature[65];
};

void sigv4_out_init(struct sigv4_out *o);
void sigv4_out_free(struct sigv4_out *o);

/* Header-based signing. */
int sigv4_sign(const struct sigv4_key *k, const struct sigv4_request *r, struct sigv4_out *out,
               struct err *err);
/* Query-string signing (presigned URL): adds X-Amz-Algorithm, -Credential, -Date, -Expires,
 * -SignedHeaders (and -Security-Token when token is not NULL) to r->query, signs, and leaves the
 * complete query (ending in &X-Amz-Signature=...) in out->authorization. */
int sigv4_presign(const struct sigv4_key *k, const struct sigv4_request *r, const char *token,
                  unsigned expires_s, struct sigv4_out *out, struct err *err);

/* Appends s[0..len) URI-encoded (unreserved A-Z a-z 0-9 - . _ ~ kept; '/' kept when
 * keep_slash); other bytes become %XX (upper-case hex). */
int sigv4_uri_encode(struct buf *b, const char *s, size_t len, int keep_slash);
/* The canonical query of q: pairs decoded, re-encoded, sorted by key then value, "k=" for a
 * missing value. Appended to b. */
int sigv4_canonical_query(struct buf *b, const char *q);
/* "YYYYMMDDTHHMMSSZ" for t (UTC) into out[SIGV4_DATE_LEN + 1]. */
void sigv4_format_date(time_t t, char *out);

/* Helpers shared with the client (OpenSSL one-shot digests). */
void sigv4_sha256_hex(const void *p, size_t len, char out[65]);
void sigv4_hex(const uint8_t *p, size_t len, char *out); /* out gets 2*len+1 chars */
/* Base64 of the 16-byte MD5 of p (Content-MD5) into out[25]; raw digest into md5_out if set. */
void sigv4_md5_base64(const void *p, size_t len, char out[25], uint8_t md5_out[16]);

#endif
