/* s3/internal.h - what the s3 .c files share and nobody else may use: the client struct,
 * the curl handle pool and the request engine (s3/http.c).
 * Engine:  s3_http_do() runs one S3 request with signing, retries (exponential backoff, full
 *          jitter, at most conf.max_attempts), resume-by-Range of response bodies, length and
 *          MD5/ETag checks, error-body parsing and errno mapping (table in s3.h).
 * Threads: the client is immutable after s3_client_new() except the pool (pool_mu) and the
 *          counters (atomics). No lock is held across network I/O.
 * Lock order: pool_mu is a leaf. */
#ifndef BFS_S3_INTERNAL_H
#define BFS_S3_INTERNAL_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>

#include "s3/s3.h"

#define S3_ERROR_BODY_MAX (64u * 1024u)
#define S3_LIST_BODY_MAX (32u << 20)
#define S3_MIN_PART_SIZE (5u << 20)
#define S3_MAX_PARTS 10000u
#define S3_POOL_MAX_IDLE 32

enum s3_kind { S3_KIND_PUT, S3_KIND_GET, S3_KIND_LIST, S3_KIND_DELETE, S3_KIND_HEAD, S3_KIND_POST };

struct s3_client {
    struct s3_conf conf;
    char *url_prefix; /* "http://host:port" or "http://bucket.host:port" */
    char *host;       /* Host header value, signed */
    char *base_path;  /* "" or "/base" (no trailing slash), raw */

    pthread_mutex_t pool_mu;
    CURL *pool[S3_POOL_MAX_IDLE]; /* guarded by pool_mu: idle handles, keep-alive */
    size_t n_pool;                /* guarded by pool_mu */

    atomic_uint_least64_t n_requests, n_put, n_get, n_list, n_delete, n_head, n_retries, n_failures,
        bytes_up, bytes_down, n_connects;
};

struct s3_http_req {
    const char *method;  /* GET PUT POST DELETE HEAD */
    const char *op;      /* label for messages, e.g. "PUT", "LIST", "UPLOAD-PART" */
    enum s3_kind kind;   /* which counter */
    const char *key;     /* raw key; NULL for the bucket itself */
    const char *query;   /* "a=b&c" (canonicalised by the engine); NULL for none */
    const uint8_t *body; /* request body (PUT/POST), may be NULL with body_len 0 */
    size_t body_len;
    bool content_md5;               /* send Content-MD5 of the body */
    const char *content_type;       /* NULL: none */
    const char *if_match;           /* GET If-Match (ETag without quotes); NULL: none */
    bool ranged;                    /* send Range: bytes=range_off-(range_off+range_len-1) */
    uint64_t range_off, range_len;  /* range_len 0 = to the end */
    s3_stream_fn *sink;             /* response body of a 2xx, in order, each byte once */
    void *sink_arg;                 /* NULL sink: body is dropped */
    void (*sink_rewind)(void *arg); /* set: a retry restarts the body (sink_rewind empties
                                       the sink) instead of resuming with a Range; for
                                       responses that are not object bytes (listings, XML) */
    bool verify_md5;                /* whole-object GET: check the body against a plain-MD5 ETag */
};

struct s3_http_resp {
    long status;
    char etag[80];        /* without quotes */
    uint64_t object_size; /* Content-Range total, or Content-Length of a 200 */
    bool has_length;      /* object_size is known */
    time_t last_modified;
    uint64_t delivered; /* body bytes handed to the sink */
    int attempts;
};

int s3_http_do(struct s3_client *c, const struct s3_http_req *r, struct s3_http_resp *out,
               struct err *err);
/* A sink that appends to a struct buf (arg), and its rewind (buf_reset). */
int s3_http_buf_sink(void *arg, const uint8_t *p, size_t len);
void s3_http_buf_rewind(void *arg);

CURL *s3_pool_get(struct s3_client *c);
void s3_pool_put(struct s3_client *c, CURL *h);

/* "bucket/key" or "bucket" for messages. */
void s3_name(const struct s3_client *c, const char *key, char *out, size_t cap);
/* True when etag is a plain 32-hex-digit MD5. */
bool s3_etag_is_md5(const char *etag);

#endif
