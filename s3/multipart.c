/* s3/multipart.c - PutObject from a file descriptor: one PUT below conf.multipart_threshold,
 * else a multipart upload with conf.parallel worker threads (contract in s3.h).
 *
 * Multipart: CreateMultipartUpload -> UploadPart x N (each with Content-MD5; the returned ETag
 * must be the part's MD5) -> CompleteMultipartUpload, whose ETag must be
 * hex(MD5(part MD5s))-N. Any failure aborts the upload, so no partial object appears. If a
 * Complete was retried and the server no longer knows the upload (its first try succeeded
 * but the answer was lost), a HEAD showing the expected ETag counts as success.
 * Threads: workers take part numbers from mp.next under mp.mu; each reads its part with
 * pread into its own buffer; the first failure wins and stops the others. mp.mu is a leaf
 * and never held across I/O. */
#include "s3/internal.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/fileio.h"
#include "common/log.h"
#include "s3/sigv4.h"
#include "s3/xml.h"

struct mp {
    struct s3_client *c;
    const char *key;
    char name[320];
    int fd;
    uint64_t len;
    size_t part_size;
    size_t n_parts;
    char *upload_id;
    char *id_enc; /* URI-encoded upload id */
    char (*etags)[80];
    uint8_t (*md5s)[16];

    pthread_mutex_t mu;
    size_t next;      /* guarded by mu: next part index to take */
    bool failed;      /* guarded by mu */
    struct err first; /* guarded by mu: the first failure */
};

static int put_small(struct s3_client *c, const char *key, int fd, uint64_t len, struct err *err)
{
    char name[320];
    size_t got = 0;
    uint8_t *data = malloc(len ? (size_t)len : 1);
    s3_name(c, key, name, sizeof name);
    if (data == NULL)
        return ERR(err, ENOMEM, "PUT %s: out of memory for %llu bytes", name,
                   (unsigned long long)len);
    int rc = fileio_pread_full(fd, data, (size_t)len, 0, &got);
    if (rc == 0 && got != len)
        rc =
            ERR(err, EIO, "PUT %s: file is shorter than %llu bytes", name, (unsigned long long)len);
    else if (rc)
        ERR(err, rc, "PUT %s: read failed (%s)", name, errno_name(rc));
    if (rc == 0)
        rc = s3_put_object(c, key, data, (size_t)len, err);
    free(data);
    return rc;
}

static int initiate(struct mp *m, struct err *err)
{
    struct buf body;
    struct s3_http_resp resp;
    buf_init(&body, S3_ERROR_BODY_MAX);
    struct s3_http_req r = {.method = "POST",
                            .op = "MULTIPART-CREATE",
                            .kind = S3_KIND_POST,
                            .key = m->key,
                            .query = "uploads",
                            .sink = s3_http_buf_sink,
                            .sink_rewind = s3_http_buf_rewind,
                            .sink_arg = &body};
    int rc = s3_http_do(m->c, &r, &resp, err);
    if (rc == 0) {
        rc = xml_parse_initiate((char *)body.data, body.len, &m->upload_id, err);
        if (rc)
            err_prefix(err, "MULTIPART-CREATE %s", m->name);
    }
    buf_free(&body);
    if (rc == 0) {
        struct buf enc;
        buf_init(&enc, 1u << 16);
        rc = sigv4_uri_encode(&enc, m->upload_id, strlen(m->upload_id), 0);
        m->id_enc = (char *)buf_steal(&enc, NULL);
        if (rc || m->id_enc == NULL)
            rc = ERR(err, ENOMEM, "MULTIPART-CREATE %s: out of memory", m->name);
    }
    return rc;
}

static int upload_part(struct mp *m, size_t i, uint8_t *data, struct err *err)
{
    uint64_t off = (uint64_t)i * m->part_size;
    size_t n = (size_t)(m->len - off < m->part_size ? m->len - off : m->part_size);
    size_t got = 0;
    char query[512], b64[25], hex[33];
    struct s3_http_resp resp;

    int rc = fileio_pread_full(m->fd, data, n, off, &got);
    if (rc || got != n)
        return ERR(err, rc ? rc : EIO, "UPLOAD-PART %s: part %zu: read failed (%s)", m->name, i + 1,
                   rc ? errno_name(rc) : "short file");
    snprintf(query, sizeof query, "partNumber=%zu&uploadId=%s", i + 1, m->id_enc);
    struct s3_http_req r = {.method = "PUT",
                            .op = "UPLOAD-PART",
                            .kind = S3_KIND_PUT,
                            .key = m->key,
                            .query = query,
                            .body = data,
                            .body_len = n,
                            .content_md5 = true};
    rc = s3_http_do(m->c, &r, &resp, err);
    if (rc)
        return rc;
    sigv4_md5_base64(data, n, b64, m->md5s[i]);
    sigv4_hex(m->md5s[i], 16, hex);
    if (s3_etag_is_md5(resp.etag) && strcasecmp(resp.etag, hex) != 0)
        return ERR(err, EBADMSG, "UPLOAD-PART %s: part %zu ETag %s is not its MD5 %s", m->name,
                   i + 1, resp.etag, hex);
    snprintf(m->etags[i], 80, "%s", resp.etag[0] ? resp.etag : hex);
    return 0;
}

static void *part_worker(void *arg)
{
    struct mp *m = arg;
    uint8_t *data = malloc(m->part_size);
    for (;;) {
        struct err e = {0};
        size_t i;
        pthread_mutex_lock(&m->mu);
        bool stop = m->failed || m->next >= m->n_parts || data == NULL;
        i = m->next++;
        if (data == NULL && !m->failed) {
            m->failed = true;
            ERR(&m->first, ENOMEM, "UPLOAD-PART %s: out of memory", m->name);
        }
        pthread_mutex_unlock(&m->mu);
        if (stop)
            break;
        int rc = upload_part(m, i, data, &e);
        if (rc) {
            pthread_mutex_lock(&m->mu);
            if (!m->failed) {
                m->failed = true;
                m->first = e;
            }
            pthread_mutex_unlock(&m->mu);
            break;
        }
    }
    free(data);
    return NULL;
}

static int upload_parts(struct mp *m, struct err *err)
{
    size_t n_threads = (size_t)m->c->conf.parallel;
    pthread_t tids[64];
    size_t started = 0;
    if (n_threads > m->n_parts)
        n_threads = m->n_parts;
    if (n_threads > 64)
        n_threads = 64;
    for (size_t t = 0; t < n_threads; t++) {
        if (pthread_create(&tids[t], NULL, part_worker, m) != 0)
            break;
        pthread_setname_np(tids[t], "s3-part");
        started++;
    }
    if (started == 0)
        part_worker(m); /* no threads available: upload on the caller's thread */
    for (size_t t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    if (m->failed) {
        if (err != NULL && err->code == 0)
            *err = m->first;
        return m->first.code ? m->first.code : EIO;
    }
    return 0;
}

static void expected_etag(const struct mp *m, char out[80])
{
    uint8_t md[16];
    char hex[33];
    unsigned int n = 0;
    EVP_Digest(m->md5s, 16 * m->n_parts, md, &n, EVP_md5(), NULL);
    sigv4_hex(md, 16, hex);
    snprintf(out, 80, "%s-%zu", hex, m->n_parts);
}

/* After a lost Complete answer: the object is there with our ETag? */
static bool completed_anyway(struct mp *m, const char *want)
{
    struct s3_object_info info;
    struct err e = {0};
    return s3_head_object(m->c, m->key, &info, &e) == 0 && strcmp(info.etag, want) == 0 &&
           info.size == m->len;
}

static int complete(struct mp *m, struct err *err)
{
    struct buf req, body;
    char query[400], etag[80], want[80];
    struct xml_s3_error xe;
    int rc = 0;

    expected_etag(m, want);
    buf_init(&req, 4u << 20);
    if (xml_build_complete(&req, m->etags, m->n_parts) != 0)
        return ERR(err, ENOMEM, "MULTIPART-COMPLETE %s: out of memory", m->name);
    snprintf(query, sizeof query, "uploadId=%s", m->id_enc);
    for (int round = 1; round <= 3; round++) {
        struct s3_http_resp resp;
        struct err e = {0};
        buf_init(&body, S3_ERROR_BODY_MAX);
        struct s3_http_req r = {.method = "POST",
                                .op = "MULTIPART-COMPLETE",
                                .kind = S3_KIND_POST,
                                .key = m->key,
                                .query = query,
                                .body = req.data,
                                .body_len = req.len,
                                .content_type = "application/xml",
                                .sink = s3_http_buf_sink,
                                .sink_rewind = s3_http_buf_rewind,
                                .sink_arg = &body};
        rc = s3_http_do(m->c, &r, &resp, &e);
        if (rc == 0)
            rc = xml_parse_complete((char *)body.data, body.len, etag, &xe, &e);
        buf_free(&body);
        if (rc == ENOENT && (resp.attempts > 1 || round > 1) && completed_anyway(m, want))
            rc = 0, snprintf(etag, sizeof etag, "%s", want);
        if (rc != EAGAIN || round == 3) {
            if (rc && err != NULL && err->code == 0)
                *err = e;
            break;
        }
        LOG_WARN("s3: retry op=MULTIPART-COMPLETE key=%s round=%d reason=\"%s\"", m->name, round,
                 e.msg);
    }
    buf_free(&req);
    if (rc == 0 && strchr(etag, '-') != NULL && strcmp(etag, want) != 0)
        rc = ERR(err, EBADMSG, "MULTIPART-COMPLETE %s: ETag %s, expected %s", m->name, etag, want);
    return rc;
}

static void abort_upload(struct mp *m)
{
    char query[400];
    struct s3_http_resp resp;
    struct err e = {0};
    snprintf(query, sizeof query, "uploadId=%s", m->id_enc);
    struct s3_http_req r = {.method = "DELETE",
                            .op = "MULTIPART-ABORT",
                            .kind = S3_KIND_DELETE,
                            .key = m->key,
                            .query = query};
    if (s3_http_do(m->c, &r, &resp, &e) != 0 && e.code != ENOENT)
        LOG_WARN("s3: multipart abort failed key=%s reason=\"%s\"", m->name, e.msg);
}

static size_t choose_part_size(size_t configured, uint64_t len)
{
    uint64_t ps = configured;
    if ((len + ps - 1) / ps > S3_MAX_PARTS) {
        ps = (len + S3_MAX_PARTS - 1) / S3_MAX_PARTS;
        ps = (ps + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
    }
    return (size_t)ps;
}

static int put_multipart(struct s3_client *c, const char *key, int fd, uint64_t len,
                         struct err *err)
{
    struct mp m = {.c = c, .key = key, .fd = fd, .len = len};
    int rc;
    s3_name(c, key, m.name, sizeof m.name);
    m.part_size = choose_part_size(c->conf.part_size, len);
    m.n_parts = (size_t)((len + m.part_size - 1) / m.part_size);
    m.etags = calloc(m.n_parts, sizeof *m.etags);
    m.md5s = calloc(m.n_parts, sizeof *m.md5s);
    pthread_mutex_init(&m.mu, NULL);
    if (m.etags == NULL || m.md5s == NULL)
        rc = ERR(err, ENOMEM, "PUT %s: out of memory", m.name);
    else
        rc = initiate(&m, err);
    if (rc == 0) {
        rc = upload_parts(&m, err);
        if (rc == 0)
            rc = complete(&m, err);
        if (rc)
            abort_upload(&m);
    }
    pthread_mutex_destroy(&m.mu);
    free(m.etags);
    free(m.md5s);
    free(m.upload_id);
    free(m.id_enc);
    return rc;
}

int s3_put_object_fd(struct s3_client *c, const char *key, int fd, uint64_t len, struct err *err)
{
    if (len >= c->conf.multipart_threshold && len > S3_MIN_PART_SIZE)
        return put_multipart(c, key, fd, len, err);
    return put_small(c, key, fd, len, err);
}
