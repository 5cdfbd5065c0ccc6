/* s3/download.c - GetObject to a file descriptor (parallel ranged GETs for big objects) and
 * streamed GetObject (contracts in s3.h).
 * To fd: HEAD gives size and ETag; objects under 2 x part_size (or parallel = 1) come in one
 * streamed GET (MD5-checked when the ETag is a plain MD5); bigger ones in part_size ranges,
 * conf.parallel at a time, each with If-Match on the HEAD's ETag (so a changed object fails
 * instead of mixing versions) and its length checked; a plain-MD5 ETag is then checked by
 * re-reading the file. Threads: workers take range numbers under dl.mu (a leaf lock, never
 * held across I/O); the first failure wins and stops the others. */
#include "s3/internal.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/fileio.h"
#include "s3/sigv4.h"

#define S3_VERIFY_CHUNK (1u << 20)

struct fd_sink {
    int fd;
    uint64_t off;
};

static int pwrite_sink(void *arg, const uint8_t *p, size_t len)
{
    struct fd_sink *s = arg;
    int rc = fileio_pwrite_all(s->fd, p, len, s->off);
    if (rc == 0)
        s->off += len;
    return rc;
}

int s3_get_object_stream(struct s3_client *c, const char *key, s3_stream_fn *cb, void *arg,
                         uint64_t *size_out, struct err *err)
{
    struct s3_http_req r = {.method = "GET",
                            .op = "GET",
                            .kind = S3_KIND_GET,
                            .key = key,
                            .sink = cb,
                            .sink_arg = arg,
                            .verify_md5 = true};
    struct s3_http_resp resp;
    int rc = s3_http_do(c, &r, &resp, err);
    if (rc == 0 && size_out != NULL)
        *size_out = resp.delivered;
    return rc;
}

struct dl {
    struct s3_client *c;
    const char *key;
    int fd;
    uint64_t size;
    uint64_t range_size;
    size_t n_ranges;
    char etag[80];

    pthread_mutex_t mu;
    size_t next;      /* guarded by mu */
    bool failed;      /* guarded by mu */
    struct err first; /* guarded by mu */
};

static int get_range(struct dl *d, size_t i, struct err *err)
{
    uint64_t off = (uint64_t)i * d->range_size;
    uint64_t len = d->size - off < d->range_size ? d->size - off : d->range_size;
    struct fd_sink sink = {d->fd, off};
    struct s3_http_resp resp;
    struct s3_http_req r = {.method = "GET",
                            .op = "GET",
                            .kind = S3_KIND_GET,
                            .key = d->key,
                            .if_match = d->etag[0] ? d->etag : NULL,
                            .ranged = true,
                            .range_off = off,
                            .range_len = len,
                            .sink = pwrite_sink,
                            .sink_arg = &sink};
    int rc = s3_http_do(d->c, &r, &resp, err);
    if (rc == 0 && (resp.delivered != len || resp.object_size != d->size)) {
        char name[320];
        s3_name(d->c, d->key, name, sizeof name);
        rc = ERR(err, EBADMSG, "GET %s: range %llu+%llu gave %llu bytes of a %llu-byte object",
                 name, (unsigned long long)off, (unsigned long long)len,
                 (unsigned long long)resp.delivered, (unsigned long long)resp.object_size);
    }
    return rc;
}

static void *range_worker(void *arg)
{
    struct dl *d = arg;
    for (;;) {
        struct err e = {0};
        pthread_mutex_lock(&d->mu);
        bool stop = d->failed || d->next >= d->n_ranges;
        size_t i = d->next++;
        pthread_mutex_unlock(&d->mu);
        if (stop)
            break;
        if (get_range(d, i, &e) != 0) {
            pthread_mutex_lock(&d->mu);
            if (!d->failed) {
                d->failed = true;
                d->first = e;
            }
            pthread_mutex_unlock(&d->mu);
            break;
        }
    }
    return NULL;
}

/* MD5 of [0, size) of fd against a plain-MD5 ETag. */
static int verify_file_md5(struct dl *d, struct err *err)
{
    uint8_t *chunk = malloc(S3_VERIFY_CHUNK), md[16];
    char hex[33], name[320];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    int rc = chunk && ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 ? 0 : ENOMEM;
    s3_name(d->c, d->key, name, sizeof name);
    for (uint64_t off = 0; rc == 0 && off < d->size;) {
        size_t want = d->size - off < S3_VERIFY_CHUNK ? (size_t)(d->size - off) : S3_VERIFY_CHUNK;
        size_t got = 0;
        rc = fileio_pread_full(d->fd, chunk, want, off, &got);
        if (rc == 0 && got != want)
            rc = EIO;
        if (rc == 0)
            EVP_DigestUpdate(ctx, chunk, got);
        off += got;
    }
    if (rc == 0) {
        EVP_DigestFinal_ex(ctx, md, &n);
        sigv4_hex(md, 16, hex);
        if (strcasecmp(hex, d->etag) != 0)
            rc =
                ERR(err, EBADMSG, "GET %s: file MD5 %s does not match ETag %s", name, hex, d->etag);
    } else {
        ERR(err, rc, "GET %s: cannot re-read the file to verify it (%s)", name, errno_name(rc));
    }
    EVP_MD_CTX_free(ctx);
    free(chunk);
    return rc;
}

static int get_parallel(struct dl *d, struct err *err)
{
    size_t n_threads = (size_t)d->c->conf.parallel, started = 0;
    pthread_t tids[64];
    if (n_threads > d->n_ranges)
        n_threads = d->n_ranges;
    if (n_threads > 64)
        n_threads = 64;
    pthread_mutex_init(&d->mu, NULL);
    for (size_t t = 0; t < n_threads; t++) {
        if (pthread_create(&tids[t], NULL, range_worker, d) != 0)
            break;
        pthread_setname_np(tids[t], "s3-range");
        started++;
    }
    if (started == 0)
        range_worker(d);
    for (size_t t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    pthread_mutex_destroy(&d->mu);
    if (d->failed) {
        if (err != NULL && err->code == 0)
            *err = d->first;
        return d->first.code ? d->first.code : EIO;
    }
    return s3_etag_is_md5(d->etag) ? verify_file_md5(d, err) : 0;
}

int s3_get_object_to_fd(struct s3_client *c, const char *key, int fd, uint64_t *size_out,
                        struct err *err)
{
    struct s3_object_info info;
    struct dl d = {.c = c, .key = key, .fd = fd, .range_size = c->conf.part_size};
    int rc = s3_head_object(c, key, &info, err);
    if (rc)
        return rc;
    if (c->conf.parallel <= 1 || info.size < 2 * (uint64_t)c->conf.part_size) {
        struct fd_sink sink = {fd, 0};
        return s3_get_object_stream(c, key, pwrite_sink, &sink, size_out, err);
    }
    d.size = info.size;
    snprintf(d.etag, sizeof d.etag, "%s", info.etag);
    d.n_ranges = (size_t)((d.size + d.range_size - 1) / d.range_size);
    rc = get_parallel(&d, err);
    if (rc == 0 && size_out != NULL)
        *size_out = d.size;
    return rc;
}
