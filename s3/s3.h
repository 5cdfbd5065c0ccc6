/* s3/s3.h - a small, thread-safe S3 client: libcurl for HTTP, our own SigV4 on OpenSSL,
 * expat for XML. Knows nothing of SQLite.
 *
 * Owns:    struct s3_client owns a copy of its configuration (secrets are cleansed on free)
 *          and a pool of libcurl handles (keep-alive connections are reused).
 *          s3_client_new() -> s3_client_free(). Results handed out (buffers, listings) belong
 *          to the caller and are freed with the matching *_free function or buf_free().
 * Threads: every operation may be called from several threads at once on one client.
 *          curl_global_init() must have run in main before the first s3_client_new().
 * Errors:  0 or a positive errno; *err gets a one-line message that names the operation, the
 *          bucket/key, the HTTP status and the S3 error code, e.g.
 *          "PUT bottomless/app.db-.../db.zstd: 403 SignatureDoesNotMatch (The request ...)";
 *          network failures name the endpoint and curl's reason. err->http_status is set when a
 *          response caused the failure. Mapping: 404/NoSuchKey/NoSuchBucket -> ENOENT,
 *          403/401 -> EACCES, 412/409 -> EEXIST, other 4xx -> EIO (EINVAL for 400),
 *          5xx/429/SlowDown/timeouts/resets after the retry budget -> EAGAIN,
 *          body over the caller's cap -> EMSGSIZE, bad XML / bad digest -> EBADMSG.
 * Retries: 5xx, 429, SlowDown, timeouts, connection resets and truncated bodies are retried
 *          with exponential backoff and full jitter, at most conf.max_attempts attempts.
 *          Uploads are whole-object PUTs (or multipart, aborted on failure), so a retry never
 *          leaves a partial object. Downloads are checked against Content-Length and, where the
 *          ETag is a plain MD5, against the MD5 of the body before they are handed over. An
 *          object body cut mid-transfer is resumed with a Range (If-Match on its ETag); listings
 *          and other XML answers are fetched again from the start. Each retry is logged at WARN;
 *          an exhausted budget ends the message with "after N attempts".
 *          A HEAD refused with 403 (no body) is followed by one GET to learn the S3 code, so
 *          the message says e.g. "403 SignatureDoesNotMatch".
 * Files:   sigv4.c (signing), xml.c (expat), config.c (conf), http.c (request engine),
 *          client.c (lifecycle, pool, single-request ops), list.c, multipart.c, download.c.
 * Secrets: never appear in messages or logs; DEBUG logs may show the canonical request. */
#ifndef BFS_S3_S3_H
#define BFS_S3_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"

#define S3_DEFAULT_ENDPOINT "http://localhost:9000"
#define S3_DEFAULT_BUCKET "bottomless"
#define S3_DEFAULT_REGION "us-east-1"

struct s3_conf {
    char *endpoint; /* scheme://host[:port][/base]; http or https */
    char *bucket;
    char *region;
    char *access_key_id; /* may contain ':' (Swift: "test:tester") */
    char *secret_access_key;
    char *session_token;        /* NULL when none */
    bool virtual_hosted;        /* bucket.host addressing instead of host/bucket */
    char *ca_file;              /* NULL: the system CA store */
    bool insecure_tls;          /* skip TLS peer verification: only by explicit flag */
    int max_attempts;           /* total attempts per request, >= 1 (default 6) */
    int backoff_base_ms;        /* first retry waits up to this (default 100) */
    int backoff_max_ms;         /* cap on one wait (default 5000) */
    long connect_timeout_ms;    /* default 5000 */
    long low_speed_timeout_s;   /* abort a transfer slower than 1 byte/s for this long (30) */
    size_t multipart_threshold; /* file uploads at least this big go multipart (16 MiB) */
    size_t part_size;           /* >= 5 MiB (8 MiB) */
    int parallel;               /* concurrent parts/ranges for one object (4) */
};

/* Fills defaults (no strings). */
void s3_conf_init(struct s3_conf *c);
/* Resolves from the environment and ~/.aws, in the documented order (s3/config.c):
 * LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID/_SECRET_ACCESS_KEY/_SESSION_TOKEN/_DEFAULT_REGION, then
 * AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN/AWS_REGION/AWS_DEFAULT_REGION, then
 * ~/.aws/credentials and ~/.aws/config (profile AWS_PROFILE, default "default").
 * Endpoint LIBSQL_BOTTOMLESS_ENDPOINT (default S3_DEFAULT_ENDPOINT), bucket
 * LIBSQL_BOTTOMLESS_BUCKET (default S3_DEFAULT_BUCKET). Only fields still NULL are filled, so a
 * caller sets flag values first. EINVAL (naming the variables to set) when no credentials. */
int s3_conf_resolve(struct s3_conf *c, struct err *err);
void s3_conf_copy(struct s3_conf *dst, const struct s3_conf *src); /* deep copy */
void s3_conf_free(struct s3_conf *c); /* frees strings, cleanses secrets */

struct s3_client;
struct s3_client *s3_client_new(const struct s3_conf *conf, struct err *err);
void s3_client_free(struct s3_client *c);
const char *s3_client_bucket(const struct s3_client *c);
const char *s3_client_endpoint(const struct s3_client *c);

struct s3_object_info {
    char *key;
    uint64_t size;
    char etag[80]; /* without quotes */
    time_t last_modified;
};

/* Bucket: ENOENT when missing, EACCES when credentials are refused. */
int s3_head_bucket(struct s3_client *c, struct err *err);
int s3_create_bucket(struct s3_client *c, struct err *err);
/* HEAD, and CREATE when missing and create is set. */
int s3_ensure_bucket(struct s3_client *c, bool create, struct err *err);

/* PutObject from memory (Content-MD5 and x-amz-content-sha256 of the payload). */
int s3_put_object(struct s3_client *c, const char *key, const void *data, size_t len,
                  struct err *err);
/* PutObject from [0, len) of fd (pread; the fd offset is not used). Multipart with parallel
 * parts when len >= conf.multipart_threshold; aborted on failure. */
int s3_put_object_fd(struct s3_client *c, const char *key, int fd, uint64_t len, struct err *err);

/* GetObject into out (whose max caps the size: EMSGSIZE beyond). ENOENT when missing. */
int s3_get_object(struct s3_client *c, const char *key, struct buf *out, struct err *err);
/* Bytes [off, off+len) (len 0 = to the end). */
int s3_get_object_range(struct s3_client *c, const char *key, uint64_t off, uint64_t len,
                        struct buf *out, struct err *err);
/* GetObject written at offset 0.. of fd (pwrite); parallel ranged GETs for large objects.
 * *size_out gets the object size. The fd is not truncated. */
int s3_get_object_to_fd(struct s3_client *c, const char *key, int fd, uint64_t *size_out,
                        struct err *err);
/* Streamed GetObject: cb gets the body in order, each byte exactly once even across retries
 * (a retry resumes with a Range from the first byte not yet delivered). cb returns 0 or a
 * positive errno, which aborts the transfer and is returned. */
typedef int s3_stream_fn(void *arg, const uint8_t *p, size_t len);
int s3_get_object_stream(struct s3_client *c, const char *key, s3_stream_fn *cb, void *arg,
                         uint64_t *size_out, struct err *err);

/* HeadObject; ENOENT when missing. out->key is left NULL. */
int s3_head_object(struct s3_client *c, const char *key, struct s3_object_info *out,
                   struct err *err);
/* DeleteObject (missing is not an error, as in S3). */
int s3_delete_object(struct s3_client *c, const char *key, struct err *err);
/* DeleteObjects in requests of up to 1000 keys, with Content-MD5. Any per-key error fails
 * the call and is named. */
int s3_delete_objects(struct s3_client *c, const char *const *keys, size_t n_keys, struct err *err);

struct s3_list_opts {
    const char *prefix;      /* NULL = none */
    const char *delimiter;   /* NULL = none */
    const char *start_after; /* v2 start-after / v1 marker for the first page; NULL = none */
    int max_keys;            /* per page, 0 = server default (1000) */
    bool v1;                 /* ListObjects (v1, marker) instead of ListObjectsV2 */
};
struct s3_list_page {
    struct s3_object_info *objects;
    size_t n_objects;
    char **prefixes; /* CommonPrefixes */
    size_t n_prefixes;
    bool truncated;
    char *next; /* continuation token (v2) or next marker (v1); NULL when not truncated */
};
/* One page; token = the previous page's next (NULL for the first). */
int s3_list_page(struct s3_client *c, const struct s3_list_opts *opts, const char *token,
                 struct s3_list_page *out, struct err *err);
void s3_list_page_free(struct s3_list_page *p);
/* Every page, in order: cb per object and per common prefix (info->key is the prefix and size
 * is 0 for prefixes; is_prefix says which). cb returns 0 to go on, a positive errno to stop
 * (returned), or -1 to stop early with success. */
typedef int s3_list_fn(void *arg, const struct s3_object_info *info, bool is_prefix);
int s3_list_all(struct s3_client *c, const struct s3_list_opts *opts, s3_list_fn *cb, void *arg,
                struct err *err);

/* Counters for status and benchmarks. n_failures: requests that failed for good (after their
 * retries); a 404 for an object (ENOENT) is an answer, not a failure. */
struct s3_stats {
    uint64_t n_requests, n_put, n_get, n_list, n_delete, n_head, n_retries, n_failures;
    uint64_t bytes_up, bytes_down;
    uint64_t n_connects; /* new TCP/TLS connections (the rest reused keep-alive ones) */
};
void s3_client_stats(struct s3_client *c, struct s3_stats *out);

#endif
