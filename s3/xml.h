/* s3/xml.h - expat parsers for the S3 response bodies the client reads: Error,
 * ListBucketResult (v1 and v2), InitiateMultipartUploadResult, CompleteMultipartUploadResult
 * (which may be an Error inside a 200), and DeleteResult; plus the DeleteObjects and
 * CompleteMultipartUpload request bodies (with XML escaping).
 * Pure: bytes in, structs out; no I/O, no state, thread-safe (one expat parser per call).
 * Owns:    results belong to the caller (s3_list_page_free(), free()).
 * Errors:  0 or a positive errno: EBADMSG for malformed XML or an unexpected root element,
 *          EMSGSIZE when a text node is over XML_MAX_TEXT, ENOMEM. *err says which document.
 * Namespaces: element names are matched without their prefix (xmlns is ignored). */
#ifndef BFS_S3_XML_H
#define BFS_S3_XML_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "s3/s3.h"

#define XML_MAX_TEXT (64u * 1024u)

struct xml_s3_error {
    char code[64];
    char message[256];
    char key[256]; /* DeleteResult per-key errors; else empty */
};

/* <Error><Code/><Message/></Error>. EBADMSG when the body is not an Error document. */
int xml_parse_error(const char *data, size_t len, struct xml_s3_error *out);

/* ListBucketResult into out (zeroed first). v1: next = NextMarker, or the last key/prefix
 * when truncated without one; v2: next = NextContinuationToken. */
int xml_parse_list(const char *data, size_t len, bool v1, struct s3_list_page *out,
                   struct err *err);

/* InitiateMultipartUploadResult: *upload_id_out (malloc'd). */
int xml_parse_initiate(const char *data, size_t len, char **upload_id_out, struct err *err);

/* CompleteMultipartUploadResult: etag_out gets the ETag without quotes. A body whose root is
 * Error fills *error_out and returns EAGAIN (S3 may report a failure inside a 200). */
int xml_parse_complete(const char *data, size_t len, char etag_out[80],
                       struct xml_s3_error *error_out, struct err *err);

/* DeleteResult: counts Deleted and Error entries; the first Error goes to *first_error. */
int xml_parse_delete(const char *data, size_t len, size_t *n_deleted, size_t *n_errors,
                     struct xml_s3_error *first_error, struct err *err);

/* Request bodies. */
int xml_build_delete(struct buf *b, const char *const *keys, size_t n_keys);
int xml_build_complete(struct buf *b, char (*const etags)[80], size_t n_parts);
/* Appends s with & < > " ' escaped. */
int xml_escape(struct buf *b, const char *s);

/* ETag without surrounding quotes into out (truncated to 79 chars). */
void xml_unquote_etag(const char *s, size_t len, char out[80]);
/* "2009-10-12T17:50:30.000Z" -> time_t (0 when malformed). */
time_t xml_parse_time(const char *s);

#endif
