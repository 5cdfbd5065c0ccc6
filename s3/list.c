/* s3/list.c - ListObjectsV2 / ListObjects v1 pages and full pagination, and DeleteObjects in
 * batches of 1000 (contracts in s3.h). */
#include "s3/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3/sigv4.h"
#include "s3/xml.h"

#define S3_DELETE_BATCH 1000

static int add_param(struct buf *q, const char *name, const char *value)
{
    if (value == NULL)
        return 0;
    int rc = buf_appendf(q, "%s%s=", q->len ? "&" : "", name);
    if (rc == 0)
        rc = sigv4_uri_encode(q, value, strlen(value), 0);
    return rc;
}

static int list_query(const struct s3_list_opts *o, const char *token, struct buf *q)
{
    char max[16];
    int rc = o->v1 ? 0 : add_param(q, "list-type", "2");
    if (rc == 0)
        rc = add_param(q, "prefix", o->prefix);
    if (rc == 0)
        rc = add_param(q, "delimiter", o->delimiter);
    if (rc == 0 && o->max_keys > 0) {
        snprintf(max, sizeof max, "%d", o->max_keys);
        rc = add_param(q, "max-keys", max);
    }
    if (rc == 0 && o->v1)
        rc = add_param(q, "marker", token ? token : o->start_after);
    else if (rc == 0 && token != NULL)
        rc = add_param(q, "continuation-token", token);
    else if (rc == 0)
        rc = add_param(q, "start-after", o->start_after);
    return rc;
}

int s3_list_page(struct s3_client *c, const struct s3_list_opts *opts, const char *token,
                 struct s3_list_page *out, struct err *err)
{
    struct buf q, body;
    struct s3_http_resp resp;
    int rc;

    memset(out, 0, sizeof *out);
    buf_init(&q, 1u << 16);
    buf_init(&body, S3_LIST_BODY_MAX);
    rc = list_query(opts, token, &q);
    if (rc) {
        buf_free(&q);
        return ERR(err, rc, "LIST %s: %s", c->conf.bucket, errno_name(rc));
    }
    struct s3_http_req r = {.method = "GET",
                            .op = "LIST",
                            .kind = S3_KIND_LIST,
                            .query = (char *)q.data,
                            .sink = s3_http_buf_sink,
                            .sink_rewind = s3_http_buf_rewind,
                            .sink_arg = &body};
    rc = s3_http_do(c, &r, &resp, err);
    if (rc == 0) {
        rc = xml_parse_list((char *)body.data, body.len, opts->v1, out, err);
        if (rc)
            err_prefix(err, "LIST %s", c->conf.bucket);
    }
    buf_free(&q);
    buf_free(&body);
    return rc;
}

/* Calls cb for each entry of a page; 1 means "stop early with success". */
static int page_callbacks(const struct s3_list_page *p, s3_list_fn *cb, void *arg)
{
    for (size_t i = 0; i < p->n_objects; i++) {
        int rc = cb(arg, &p->objects[i], false);
        if (rc)
            return rc < 0 ? 1 : rc;
    }
    for (size_t i = 0; i < p->n_prefixes; i++) {
        struct s3_object_info info = {.key = p->prefixes[i]};
        int rc = cb(arg, &info, true);
        if (rc)
            return rc < 0 ? 1 : rc;
    }
    return 0;
}

int s3_list_all(struct s3_client *c, const struct s3_list_opts *opts, s3_list_fn *cb, void *arg,
                struct err *err)
{
    char *token = NULL;
    int rc = 0;
    do {
        struct s3_list_page p;
        rc = s3_list_page(c, opts, token, &p, err);
        if (rc) {
            free(token);
            return rc;
        }
        rc = page_callbacks(&p, cb, arg);
        if (rc == 0 && p.truncated && token != NULL && strcmp(p.next, token) == 0)
            rc = ERR(err, EBADMSG, "LIST %s: the server repeated continuation %s", c->conf.bucket,
                     token);
        free(token);
        token = NULL;
        if (rc == 0 && p.truncated) {
            token = p.next;
            p.next = NULL;
        }
        s3_list_page_free(&p);
    } while (rc == 0 && token != NULL);
    free(token);
    if (rc == 1)
        return 0;
    if (rc && err != NULL && err->code == 0)
        ERR(err, rc, "LIST %s: stopped by the caller (%s)", c->conf.bucket, errno_name(rc));
    return rc;
}

static int delete_errno(const char *code)
{
    if (strcmp(code, "AccessDenied") == 0)
        return EACCES;
    if (strcmp(code, "InternalError") == 0 || strcmp(code, "SlowDown") == 0)
        return EAGAIN;
    return EIO;
}

static int delete_batch(struct s3_client *c, const char *const *keys, size_t n, struct err *err)
{
    struct buf req, body;
    struct s3_http_resp resp;
    int rc;

    buf_init(&req, 64u << 20);
    buf_init(&body, S3_LIST_BODY_MAX);
    rc = xml_build_delete(&req, keys, n);
    if (rc) {
        buf_free(&req);
        return ERR(err, rc, "DELETE-MULTI %s: %s", c->conf.bucket, errno_name(rc));
    }
    struct s3_http_req r = {.method = "POST",
                            .op = "DELETE-MULTI",
                            .kind = S3_KIND_DELETE,
                            .query = "delete",
                            .body = req.data,
                            .body_len = req.len,
                            .content_md5 = true,
                            .content_type = "application/xml",
                            .sink = s3_http_buf_sink,
                            .sink_rewind = s3_http_buf_rewind,
                            .sink_arg = &body};
    rc = s3_http_do(c, &r, &resp, err);
    if (rc == 0) {
        size_t n_deleted = 0, n_errors = 0;
        struct xml_s3_error first;
        rc = xml_parse_delete((char *)body.data, body.len, &n_deleted, &n_errors, &first, err);
        if (rc)
            err_prefix(err, "DELETE-MULTI %s", c->conf.bucket);
        else if (n_errors > 0)
            rc = ERR(err, delete_errno(first.code),
                     "DELETE-MULTI %s/%s: %s (%s); %zu of %zu keys failed", c->conf.bucket,
                     first.key, first.code, first.message, n_errors, n);
    }
    buf_free(&req);
    buf_free(&body);
    return rc;
}

int s3_delete_objects(struct s3_client *c, const char *const *keys, size_t n_keys, struct err *err)
{
    for (size_t i = 0; i < n_keys; i += S3_DELETE_BATCH) {
        size_t n = n_keys - i < S3_DELETE_BATCH ? n_keys - i : S3_DELETE_BATCH;
        int rc = delete_batch(c, keys + i, n, err);
        if (rc)
            return rc;
    }
    return 0;
}
