/* s3/client.c - struct s3_client lifecycle, the curl handle pool, stats, and the single-request
 * operations: HeadBucket, CreateBucket, PutObject from memory, GetObject (whole and ranged)
 * into memory, HeadObject, DeleteObject (contracts in s3.h; the engine is s3/http.c). */
#include "s3/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "s3/sigv4.h"

/* ---- pool ---- */

CURL *s3_pool_get(struct s3_client *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->pool_mu);
    if (c->n_pool > 0)
        h = c->pool[--c->n_pool];
    pthread_mutex_unlock(&c->pool_mu);
    return h != NULL ? h : curl_easy_init();
}

void s3_pool_put(struct s3_client *c, CURL *h)
{
    curl_easy_reset(h); /* keeps the connection cache: keep-alive across requests */
    pthread_mutex_lock(&c->pool_mu);
    if (c->n_pool < S3_POOL_MAX_IDLE) {
        c->pool[c->n_pool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->pool_mu);
    if (h != NULL)
        curl_easy_cleanup(h);
}

/* ---- lifecycle ---- */

static int parse_endpoint(struct s3_client *c, struct err *err)
{
    const char *ep = c->conf.endpoint;
    const char *sep = strstr(ep, "://");
    if (sep == NULL || !((sep - ep == 4 && strncasecmp(ep, "http", 4) == 0) ||
                         (sep - ep == 5 && strncasecmp(ep, "https", 5) == 0)))
        return ERR(err, EINVAL, "s3: endpoint %s: must start with http:// or https://", ep);
    const char *auth = sep + 3;
    size_t auth_len = strcspn(auth, "/");
    if (auth_len == 0)
        return ERR(err, EINVAL, "s3: endpoint %s: no host", ep);
    const char *base = auth + auth_len;
    size_t base_len = strlen(base);
    while (base_len > 0 && base[base_len - 1] == '/')
        base_len--;
    const char *vb = c->conf.virtual_hosted ? c->conf.bucket : "";
    const char *dot = c->conf.virtual_hosted ? "." : "";
    if (asprintf(&c->host, "%s%s%.*s", vb, dot, (int)auth_len, auth) < 0 ||
        asprintf(&c->url_prefix, "%.*s%s%s%.*s", (int)(sep - ep + 3), ep, vb, dot, (int)auth_len,
                 auth) < 0 ||
        (c->base_path = strndup(base, base_len)) == NULL) {
        c->host = c->url_prefix = NULL;
        return ERR(err, ENOMEM, "s3: out of memory");
    }
    return 0;
}

static int check_conf(const struct s3_conf *c, struct err *err)
{
    if (c->endpoint == NULL || c->bucket == NULL || c->region == NULL || c->access_key_id == NULL ||
        c->secret_access_key == NULL)
        return ERR(err, EINVAL,
                   "s3: configuration lacks endpoint, bucket, region or "
                   "credentials (call s3_conf_resolve)");
    if (strlen(c->bucket) < 3 || strchr(c->bucket, '/') != NULL)
        return ERR(err, EINVAL,
                   "s3: bad bucket name \"%s\": S3 bucket names have at least 3 characters "
                   "and no '/'",
                   c->bucket);
    if (c->part_size < S3_MIN_PART_SIZE)
        return ERR(err, EINVAL, "s3: part size %zu is below 5 MiB", c->part_size);
    if (c->max_attempts < 1 || c->parallel < 1)
        return ERR(err, EINVAL, "s3: max_attempts and parallel must be >= 1");
    return 0;
}

struct s3_client *s3_client_new(const struct s3_conf *conf, struct err *err)
{
    struct s3_client *c;
    if (check_conf(conf, err) != 0)
        return NULL;
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        ERR(err, ENOMEM, "s3: out of memory");
        return NULL;
    }
    s3_conf_copy(&c->conf, conf);
    pthread_mutex_init(&c->pool_mu, NULL);
    if (check_conf(&c->conf, err) != 0 || parse_endpoint(c, err) != 0) {
        s3_client_free(c);
        return NULL;
    }
    return c;
}

void s3_client_free(struct s3_client *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_pool; i++)
        curl_easy_cleanup(c->pool[i]);
    pthread_mutex_destroy(&c->pool_mu);
    s3_conf_free(&c->conf);
    free(c->url_prefix);
    free(c->host);
    free(c->base_path);
    free(c);
}

const char *s3_client_bucket(const struct s3_client *c)
{
    return c->conf.bucket;
}

const char *s3_client_endpoint(const struct s3_client *c)
{
    return c->conf.endpoint;
}

void s3_client_stats(struct s3_client *c, struct s3_stats *out)
{
    out->n_requests = atomic_load(&c->n_requests);
    out->n_put = atomic_load(&c->n_put);
    out->n_get = atomic_load(&c->n_get);
    out->n_list = atomic_load(&c->n_list);
    out->n_delete = atomic_load(&c->n_delete);
    out->n_head = atomic_load(&c->n_head);
    out->n_retries = atomic_load(&c->n_retries);
    out->n_failures = atomic_load(&c->n_failures);
    out->bytes_up = atomic_load(&c->bytes_up);
    out->bytes_down = atomic_load(&c->bytes_down);
    out->n_connects = atomic_load(&c->n_connects);
}

/* ---- HEAD ---- */

/* A HEAD answer has no body, so a 403 cannot say why. One GET of the same resource (a listing
 * of one key, or byte 0) fetches the S3 error code, e.g. SignatureDoesNotMatch, for the
 * message. */
static int head(struct s3_client *c, const char *key, struct s3_http_resp *resp, struct err *err)
{
    struct s3_http_req r = {.method = "HEAD", .op = "HEAD", .kind = S3_KIND_HEAD, .key = key};
    struct err e = {0}, why = {0};
    int rc = s3_http_do(c, &r, resp, &e);
    if (rc == EACCES) {
        struct s3_http_resp gresp;
        struct s3_http_req g = {.method = "GET",
                                .op = "HEAD",
                                .kind = S3_KIND_HEAD,
                                .key = key,
                                .query = key ? NULL : "list-type=2&max-keys=1",
                                .ranged = key != NULL,
                                .range_len = 1};
        if (s3_http_do(c, &g, &gresp, &why) == EACCES)
            e = why;
    }
    if (rc && err != NULL && err->code == 0)
        *err = e;
    return rc;
}

/* ---- bucket ---- */

int s3_head_bucket(struct s3_client *c, struct err *err)
{
    struct s3_http_resp resp;
    return head(c, NULL, &resp, err);
}

int s3_create_bucket(struct s3_client *c, struct err *err)
{
    struct buf body;
    struct s3_http_resp resp;
    struct err e = {0};
    int rc = 0;

    buf_init(&body, 4096);
    if (strcmp(c->conf.region, "us-east-1") != 0)
        rc = buf_appendf(&body,
                         "<CreateBucketConfiguration><LocationConstraint>%s"
                         "</LocationConstraint></CreateBucketConfiguration>",
                         c->conf.region);
    if (rc) {
        buf_free(&body);
        return ERR(err, rc, "PUT %s: %s", c->conf.bucket, errno_name(rc));
    }
    struct s3_http_req r = {
        .method = "PUT", .op = "PUT", .kind = S3_KIND_PUT, .body = body.data, .body_len = body.len};
    rc = s3_http_do(c, &r, &resp, &e);
    buf_free(&body);
    if (rc == EEXIST && strstr(e.msg, "BucketAlreadyOwnedByYou") != NULL)
        return 0;
    if (rc && err != NULL && err->code == 0)
        *err = e;
    return rc;
}

int s3_ensure_bucket(struct s3_client *c, bool create, struct err *err)
{
    struct err e = {0};
    int rc = s3_head_bucket(c, &e);
    if (rc == ENOENT && create) {
        err_clear(&e);
        rc = s3_create_bucket(c, &e);
        if (rc == EEXIST) { /* created by someone else meanwhile */
            err_clear(&e);
            rc = s3_head_bucket(c, &e);
        }
    }
    if (rc && err != NULL && err->code == 0)
        *err = e;
    return rc;
}

/* ---- objects ---- */

int s3_put_object(struct s3_client *c, const char *key, const void *data, size_t len,
                  struct err *err)
{
    struct s3_http_req r = {.method = "PUT",
                            .op = "PUT",
                            .kind = S3_KIND_PUT,
                            .key = key,
                            .body = data,
                            .body_len = len,
                            .content_md5 = true};
    struct s3_http_resp resp;
    int rc = s3_http_do(c, &r, &resp, err);
    if (rc == 0 && s3_etag_is_md5(resp.etag)) {
        uint8_t md[16];
        char b64[25], hex[33];
        sigv4_md5_base64(data ? data : "", len, b64, md);
        sigv4_hex(md, 16, hex);
        if (strcasecmp(hex, resp.etag) != 0) {
            char name[320];
            s3_name(c, key, name, sizeof name);
            return ERR(err, EBADMSG, "PUT %s: stored ETag %s is not the MD5 %s of the data", name,
                       resp.etag, hex);
        }
    }
    return rc;
}

static int get_into(struct s3_client *c, const char *key, bool ranged, uint64_t off, uint64_t len,
                    struct buf *out, struct err *err)
{
    struct s3_http_req r = {.method = "GET",
                            .op = "GET",
                            .kind = S3_KIND_GET,
                            .key = key,
                            .ranged = ranged,
                            .range_off = off,
                            .range_len = len,
                            .sink = s3_http_buf_sink,
                            .sink_arg = out,
                            .verify_md5 = !ranged};
    struct s3_http_resp resp;
    buf_reset(out);
    int rc = s3_http_do(c, &r, &resp, err);
    if (rc == 0 && out->data == NULL)
        rc = buf_append(out, "", 0); /* an empty object: data is a valid empty string */
    if (rc)
        buf_free(out);
    return rc;
}

int s3_get_object(struct s3_client *c, const char *key, struct buf *out, struct err *err)
{
    return get_into(c, key, false, 0, 0, out, err);
}

int s3_get_object_range(struct s3_client *c, const char *key, uint64_t off, uint64_t len,
                        struct buf *out, struct err *err)
{
    return get_into(c, key, true, off, len, out, err);
}

int s3_head_object(struct s3_client *c, const char *key, struct s3_object_info *out,
                   struct err *err)
{
    struct s3_http_resp resp;
    int rc = head(c, key, &resp, err);
    memset(out, 0, sizeof *out);
    if (rc == 0) {
        out->size = resp.object_size;
        snprintf(out->etag, sizeof out->etag, "%s", resp.etag);
        out->last_modified = resp.last_modified;
    }
    return rc;
}

int s3_delete_object(struct s3_client *c, const char *key, struct err *err)
{
    struct s3_http_req r = {.method = "DELETE", .op = "DELETE", .kind = S3_KIND_DELETE, .key = key};
    struct s3_http_resp resp;
    struct err e = {0};
    int rc = s3_http_do(c, &r, &resp, &e);
    if (rc == ENOENT && strstr(e.msg, "NoSuchBucket") == NULL)
        return 0;
    if (rc && err != NULL && err->code == 0)
        *err = e;
    return rc;
}
