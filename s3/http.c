/* s3/http.c - the request engine (contract in internal.h and s3.h): one signed S3 request on a
 * pooled curl handle, retried on 5xx/429/SlowDown/RequestTimeout, timeouts, resets and
 * truncated bodies with exponential backoff and full jitter.
 *
 * Resume: response bytes go to the sink exactly once. When an attempt dies mid-body, the next
 * one asks for "Range: bytes=<first byte not yet delivered>-<end>" with If-Match on the ETag
 * of the first response, so a changed object fails (412) instead of mixing versions.
 * Checks: every attempt's body must match its Content-Length (curl reports short bodies as
 * CURLE_PARTIAL_FILE); the whole delivery must match the first response's length; for an
 * unranged GET with verify_md5 and a plain-MD5 ETag the MD5 of the body must match. */
#include "s3/internal.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "s3/sigv4.h"
#include "s3/xml.h"

enum verdict { V_DONE, V_RETRY, V_FAIL };

/* Per-call state that survives attempts. */
struct call {
    struct s3_client *c;
    const struct s3_http_req *r;
    struct s3_http_resp *resp;
    char name[320]; /* "bucket/key" */
    char payload_hash[65];
    char content_md5[25];
    EVP_MD_CTX *md5;   /* running MD5 of delivered bytes (verify_md5) */
    uint64_t expected; /* bytes the whole delivery must have (when known) */
    bool expected_known;
    char first_etag[80]; /* ETag of the first 2xx response: If-Match for resumes */
    int sink_rc;
};

/* Per-attempt state filled by curl callbacks. */
struct attempt {
    struct call *call;
    long status;
    char etag[80];
    uint64_t content_length;
    bool has_content_length;
    uint64_t range_total;
    bool has_range_total;
    time_t last_modified;
    uint64_t got; /* body bytes of a 2xx this attempt */
    bool resumed; /* this attempt sent a resume Range */
    struct buf errbody;
    const uint8_t *up;
    size_t up_len, up_pos;
};

int s3_http_buf_sink(void *arg, const uint8_t *p, size_t len)
{
    return buf_append(arg, p, len);
}

void s3_http_buf_rewind(void *arg)
{
    buf_reset(arg);
}

void s3_name(const struct s3_client *c, const char *key, char *out, size_t cap)
{
    if (key != NULL)
        snprintf(out, cap, "%s/%s", c->conf.bucket, key);
    else
        snprintf(out, cap, "%s", c->conf.bucket);
}

bool s3_etag_is_md5(const char *etag)
{
    size_t n = strlen(etag);
    if (n != 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = etag[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
            return false;
    }
    return true;
}

/* ---- curl callbacks ---- */

static bool header_is(const char *line, size_t n, const char *name, const char **value)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return false;
    *value = line + k + 1;
    while (**value == ' ' || **value == '\t')
        (*value)++;
    return true;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct attempt *a = ud;
    size_t n = size * nmemb;
    char line[512];
    const char *v;
    size_t len = n < sizeof line - 1 ? n : sizeof line - 1;

    memcpy(line, p, len);
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    line[len] = '\0';
    if (strncmp(line, "HTTP/", 5) == 0) { /* a new response (e.g. after 100 Continue) */
        const char *sp = strchr(line, ' ');
        a->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        a->etag[0] = '\0';
        a->has_content_length = a->has_range_total = false;
    } else if (header_is(line, len, "ETag", &v)) {
        xml_unquote_etag(v, strlen(v), a->etag);
    } else if (header_is(line, len, "Content-Length", &v)) {
        a->content_length = strtoull(v, NULL, 10);
        a->has_content_length = true;
    } else if (header_is(line, len, "Content-Range", &v)) {
        const char *slash = strchr(v, '/');
        if (slash != NULL && slash[1] != '*') {
            a->range_total = strtoull(slash + 1, NULL, 10);
            a->has_range_total = true;
        }
    } else if (header_is(line, len, "Last-Modified", &v)) {
        time_t t = curl_getdate(v, NULL);
        a->last_modified = t > 0 ? t : 0;
    }
    return n;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct attempt *a = ud;
    struct call *k = a->call;
    size_t n = size * nmemb;

    if (a->status < 200 || a->status >= 300) {
        size_t room = S3_ERROR_BODY_MAX - a->errbody.len;
        if (room > 0 && buf_append(&a->errbody, p, n < room ? n : room) != 0)
            buf_init(&a->errbody, S3_ERROR_BODY_MAX);
        return n;
    }
    if (k->md5 != NULL)
        EVP_DigestUpdate(k->md5, p, n);
    if (k->r->sink != NULL) {
        int rc = k->r->sink(k->r->sink_arg, (const uint8_t *)p, n);
        if (rc) {
            k->sink_rc = rc;
            return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
        }
    }
    a->got += n;
    k->resp->delivered += n;
    return n;
}

static size_t on_read(char *p, size_t size, size_t nmemb, void *ud)
{
    struct attempt *a = ud;
    size_t n = size * nmemb, left = a->up_len - a->up_pos;
    if (n > left)
        n = left;
    memcpy(p, a->up + a->up_pos, n);
    a->up_pos += n;
    return n;
}

static int on_seek(void *ud, curl_off_t off, int origin)
{
    struct attempt *a = ud;
    if (origin != SEEK_SET || off < 0 || (uint64_t)off > a->up_len)
        return CURL_SEEKFUNC_FAIL;
    a->up_pos = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

/* ---- building one attempt ---- */

static int add_header(struct curl_slist **list, struct sigv4_header *signed_h, size_t *n_signed,
                      const char *name, const char *value)
{
    char line[2048];
    if ((size_t)snprintf(line, sizeof line, "%s: %s", name, value) >= sizeof line)
        return EMSGSIZE;
    struct curl_slist *l = curl_slist_append(*list, line);
    if (l == NULL)
        return ENOMEM;
    *list = l;
    if (signed_h != NULL)
        signed_h[(*n_signed)++] = (struct sigv4_header){name, value};
    return 0;
}

/* Raw path: base + "/" + bucket (path-style) + "/" + key. */
static int build_path(const struct s3_client *c, const char *key, struct buf *raw)
{
    int rc = buf_appendf(raw, "%s", c->base_path);
    if (rc == 0 && !c->conf.virtual_hosted)
        rc = buf_appendf(raw, "/%s", c->conf.bucket);
    if (rc == 0 && key != NULL)
        rc = buf_appendf(raw, "/%s", key);
    if (rc == 0 && raw->len == 0)
        rc = buf_append(raw, "/", 1);
    return rc;
}

static int build_url(const struct s3_client *c, const char *raw_path, const char *query,
                     struct buf *url)
{
    int rc = buf_appendf(url, "%s", c->url_prefix);
    if (rc == 0)
        rc = sigv4_uri_encode(url, raw_path, strlen(raw_path), 1);
    if (rc == 0 && query != NULL && *query != '\0') {
        rc = buf_append(url, "?", 1);
        if (rc == 0)
            rc = sigv4_canonical_query(url, query);
    }
    return rc;
}

/* The Range header for this attempt, or "" for none. */
static void range_value(const struct call *k, struct attempt *a, char *out, size_t cap)
{
    const struct s3_http_req *r = k->r;
    uint64_t start = (r->ranged ? r->range_off : 0) + k->resp->delivered;
    bool to_end = !r->ranged || r->range_len == 0;
    out[0] = '\0';
    a->resumed = k->resp->delivered > 0;
    if (!r->ranged && !a->resumed)
        return;
    if (to_end)
        snprintf(out, cap, "bytes=%llu-", (unsigned long long)start);
    else
        snprintf(out, cap, "bytes=%llu-%llu", (unsigned long long)start,
                 (unsigned long long)(r->range_off + r->range_len - 1));
}

struct signed_req {
    struct curl_slist *headers;
    struct sigv4_header h[12];
    size_t n_h;
    char date[SIGV4_DATE_LEN + 1];
    char range[64];
    struct buf raw_path, url;
};

static int sign_attempt(struct call *k, struct attempt *a, struct signed_req *s, struct err *err)
{
    const struct s3_client *c = k->c;
    const struct s3_http_req *r = k->r;
    const char *if_match = r->if_match ? r->if_match : NULL;
    struct sigv4_out out;
    int rc;

    sigv4_format_date(time(NULL), s->date);
    range_value(k, a, s->range, sizeof s->range);
    if (a->resumed && if_match == NULL && k->first_etag[0] != '\0')
        if_match = k->first_etag;
    rc = add_header(&s->headers, s->h, &s->n_h, "Host", c->host);
    if (rc == 0)
        rc = add_header(&s->headers, s->h, &s->n_h, "x-amz-date", s->date);
    if (rc == 0)
        rc = add_header(&s->headers, s->h, &s->n_h, "x-amz-content-sha256", k->payload_hash);
    if (rc == 0 && r->content_md5)
        rc = add_header(&s->headers, s->h, &s->n_h, "Content-MD5", k->content_md5);
    if (rc == 0 && s->range[0] != '\0')
        rc = add_header(&s->headers, s->h, &s->n_h, "Range", s->range);
    if (rc == 0 && if_match != NULL) {
        char quoted[84];
        snprintf(quoted, sizeof quoted, "\"%s\"", if_match);
        rc = add_header(&s->headers, NULL, NULL, "If-Match", quoted);
    }
    if (rc == 0 && c->conf.session_token != NULL)
        rc = add_header(&s->headers, s->h, &s->n_h, "x-amz-security-token", c->conf.session_token);
    if (rc == 0)
        rc = add_header(&s->headers, NULL, NULL, "Content-Type",
                        r->content_type ? r->content_type : "");
    if (rc == 0)
        rc = add_header(&s->headers, NULL, NULL, "Expect", "");
    if (rc == 0)
        rc = build_path(c, r->key, &s->raw_path);
    if (rc == 0)
        rc = build_url(c, (char *)s->raw_path.data, r->query, &s->url);
    if (rc)
        return ERR(err, rc, "%s %s: cannot build the request (%s)", r->op, k->name, errno_name(rc));

    struct sigv4_key key = {c->conf.access_key_id, c->conf.secret_access_key, c->conf.region, "s3"};
    struct sigv4_request sr = {r->method, (char *)s->raw_path.data, r->query, s->h,
                               s->n_h,    k->payload_hash,          s->date};
    sigv4_out_init(&out);
    rc = sigv4_sign(&key, &sr, &out, err);
    if (rc == 0) {
        if (c->conf.session_token == NULL) /* the canonical request would show the token */
            LOG_TRACE("s3: canonical request op=%s key=%s\n%s", r->op, k->name,
                      (char *)out.canonical_request.data);
        char auth[1024];
        snprintf(auth, sizeof auth, "Authorization: %s", (char *)out.authorization.data);
        struct curl_slist *l = curl_slist_append(s->headers, auth);
        OPENSSL_cleanse(auth, sizeof auth);
        if (l == NULL)
            rc = ERR(err, ENOMEM, "%s %s: out of memory", r->op, k->name);
        else
            s->headers = l;
    }
    sigv4_out_free(&out);
    return rc;
}

static void setup_handle(CURL *h, struct call *k, struct attempt *a, struct signed_req *s,
                         char *errbuf)
{
    const struct s3_conf *conf = &k->c->conf;
    const struct s3_http_req *r = k->r;

    curl_easy_setopt(h, CURLOPT_URL, (char *)s->url.data);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, conf->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, conf->low_speed_timeout_s);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (conf->ca_file != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, conf->ca_file);
    if (conf->insecure_tls) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "PUT") == 0) {
        a->up = r->body;
        a->up_len = r->body_len;
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, a);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, a);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? (const char *)r->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
}

/* ---- classification ---- */

static int status_errno(long status, const char *code)
{
    if (status == 404 || strcmp(code, "NoSuchKey") == 0 || strcmp(code, "NoSuchBucket") == 0)
        return ENOENT;
    if (status == 401 || status == 403)
        return EACCES;
    if (status == 409 || status == 412)
        return EEXIST;
    if (status == 400)
        return EINVAL;
    if (status >= 500 || status == 429)
        return EAGAIN;
    return EIO;
}

static bool status_retryable(long status, const char *code)
{
    return status >= 500 || status == 429 || strcmp(code, "SlowDown") == 0 ||
           strcmp(code, "RequestTimeout") == 0 || strcmp(code, "InternalError") == 0;
}

static const char *status_text(long status)
{
    switch (status) {
    case 400:
        return "BadRequest";
    case 403:
        return "Forbidden";
    case 404:
        return "NotFound";
    case 409:
        return "Conflict";
    case 412:
        return "PreconditionFailed";
    case 416:
        return "InvalidRange";
    case 503:
        return "ServiceUnavailable";
    default:
        return status >= 500 ? "ServerError" : "HTTPError";
    }
}

static bool curl_retryable(CURLcode cc)
{
    switch (cc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_WRITE_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
        return false;
    default:
        return true;
    }
}

/* Verdict for an HTTP response that arrived completely. */
static enum verdict judge_status(struct call *k, struct attempt *a, struct err *err)
{
    const struct s3_http_req *r = k->r;
    struct xml_s3_error xe;
    if (a->status >= 200 && a->status < 300)
        return V_DONE;
    if (a->errbody.len == 0 || xml_parse_error((char *)a->errbody.data, a->errbody.len, &xe))
        memset(&xe, 0, sizeof xe);
    const char *code = xe.code[0] ? xe.code : status_text(a->status);
    int e = status_errno(a->status, xe.code);
    k->resp->status = a->status;
    if (strcmp(code, "RequestTimeTooSkewed") == 0)
        ERR(err, e,
            "%s %s: %ld %s: this machine's clock differs from the S3 server's by more than the "
            "15 minutes S3 allows; fix the system time (e.g. timedatectl set-ntp true)",
            r->op, k->name, a->status, code);
    else if (xe.message[0])
        ERR(err, e, "%s %s: %ld %s (%s)", r->op, k->name, a->status, code, xe.message);
    else
        ERR(err, e, "%s %s: %ld %s", r->op, k->name, a->status, code);
    if (err != NULL)
        err->http_status = (int)a->status;
    return status_retryable(a->status, xe.code) ? V_RETRY : V_FAIL;
}

/* Checks a 2xx: a resume must get 206, and the body must match its Content-Length. */
static enum verdict judge_body(struct call *k, struct attempt *a, struct err *err)
{
    const struct s3_http_req *r = k->r;
    bool is_head = strcmp(r->method, "HEAD") == 0;

    if (a->resumed && a->status != 206) {
        ERR(err, EBADMSG, "%s %s: server ignored the resume Range (%ld)", r->op, k->name,
            a->status);
        return V_FAIL;
    }
    if (!is_head && a->has_content_length && a->got != a->content_length) {
        ERR(err, EAGAIN, "%s %s: truncated body (%llu of %llu bytes)", r->op, k->name,
            (unsigned long long)a->got, (unsigned long long)a->content_length);
        return V_RETRY;
    }
    return V_DONE;
}

/* The first 2xx answer (not a resume) defines the object: ETag for If-Match and the MD5 check,
 * size, and the length the whole delivery must reach. Recorded even when its body was cut. */
static void record_first(struct call *k, const struct attempt *a)
{
    struct s3_http_resp *resp = k->resp;
    if (a->resumed || a->status < 200 || a->status >= 300)
        return;
    resp->status = a->status;
    snprintf(resp->etag, sizeof resp->etag, "%s", a->etag);
    snprintf(k->first_etag, sizeof k->first_etag, "%s", a->etag);
    resp->last_modified = a->last_modified;
    resp->has_length = a->has_range_total || (a->status == 200 && a->has_content_length);
    resp->object_size = a->has_range_total ? a->range_total : a->content_length;
    k->expected = a->content_length;
    k->expected_known = a->has_content_length && strcmp(k->r->method, "HEAD") != 0;
}

static int verify_done(struct call *k, struct err *err)
{
    const struct s3_http_req *r = k->r;
    if (k->expected_known && k->resp->delivered != k->expected)
        return ERR(err, EBADMSG, "%s %s: got %llu bytes, expected %llu", r->op, k->name,
                   (unsigned long long)k->resp->delivered, (unsigned long long)k->expected);
    if (k->md5 != NULL && k->resp->status == 200 && s3_etag_is_md5(k->resp->etag)) {
        uint8_t md[16];
        char hex[33];
        unsigned int n = 0;
        EVP_DigestFinal_ex(k->md5, md, &n);
        sigv4_hex(md, 16, hex);
        if (strcasecmp(hex, k->resp->etag) != 0)
            return ERR(err, EBADMSG, "%s %s: body MD5 %s does not match ETag %s", r->op, k->name,
                       hex, k->resp->etag);
    }
    return 0;
}

/* One attempt: V_DONE, V_RETRY or V_FAIL (err set for the last two). */
static enum verdict run_attempt(struct call *k, struct err *err)
{
    struct attempt a = {.call = k};
    struct signed_req s = {0};
    char errbuf[CURL_ERROR_SIZE] = "";
    enum verdict v = V_FAIL;

    buf_init(&a.errbody, S3_ERROR_BODY_MAX);
    buf_init(&s.raw_path, 1u << 16);
    buf_init(&s.url, 1u << 16);
    CURL *h = s3_pool_get(k->c);
    if (h == NULL) {
        ERR(err, ENOMEM, "%s %s: cannot create a curl handle", k->r->op, k->name);
        goto out;
    }
    if (sign_attempt(k, &a, &s, err) != 0)
        goto out;
    setup_handle(h, k, &a, &s, errbuf);
    atomic_fetch_add(&k->c->n_requests, 1);
    CURLcode cc = curl_easy_perform(h);
    long n_conn = 0;
    if (curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &n_conn) == CURLE_OK && n_conn > 0)
        atomic_fetch_add(&k->c->n_connects, (uint64_t)n_conn);
    atomic_fetch_add(&k->c->bytes_down, a.got);
    record_first(k, &a);
    if (cc == CURLE_OK && a.status >= 200 && a.status < 300)
        atomic_fetch_add(&k->c->bytes_up, k->r->body_len);
    if (k->sink_rc) {
        ERR(err, k->sink_rc, "%s %s: %s", k->r->op, k->name,
            k->sink_rc == EMSGSIZE ? "object larger than the caller's limit"
                                   : errno_name(k->sink_rc));
    } else if (cc != CURLE_OK) {
        ERR(err, curl_retryable(cc) ? EAGAIN : EIO, "%s %s: %s: %s%s%s", k->r->op, k->name,
            k->c->url_prefix, curl_easy_strerror(cc), errbuf[0] ? ": " : "", errbuf);
        v = curl_retryable(cc) ? V_RETRY : V_FAIL;
    } else {
        v = judge_status(k, &a, err);
        if (v == V_DONE)
            v = judge_body(k, &a, err);
    }
    LOG_DEBUG("s3: %s key=%s http=%ld up=%zu down=%" PRIu64 "%s", k->r->op, k->name, a.status,
              k->r->body_len, a.got, v == V_DONE ? "" : v == V_RETRY ? " retry" : " failed");
out:
    if (h != NULL)
        s3_pool_put(k->c, h);
    curl_slist_free_all(s.headers);
    buf_free(&s.raw_path);
    buf_free(&s.url);
    buf_free(&a.errbody);
    return v;
}

/* ---- retries ---- */

static long backoff_ms(const struct s3_conf *conf, int attempt)
{
    uint64_t cap = (uint64_t)conf->backoff_base_ms;
    for (int i = 1; i < attempt && cap < (uint64_t)conf->backoff_max_ms; i++)
        cap *= 2;
    if (cap > (uint64_t)conf->backoff_max_ms)
        cap = (uint64_t)conf->backoff_max_ms;
    uint32_t rnd = 0;
    if (RAND_bytes((unsigned char *)&rnd, sizeof rnd) != 1)
        rnd = (uint32_t)time(NULL);
    return cap ? (long)(rnd % (cap + 1)) : 0; /* full jitter: uniform in [0, cap] */
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void count_kind(struct s3_client *c, enum s3_kind kind)
{
    switch (kind) {
    case S3_KIND_PUT:
        atomic_fetch_add(&c->n_put, 1);
        break;
    case S3_KIND_GET:
        atomic_fetch_add(&c->n_get, 1);
        break;
    case S3_KIND_LIST:
        atomic_fetch_add(&c->n_list, 1);
        break;
    case S3_KIND_DELETE:
        atomic_fetch_add(&c->n_delete, 1);
        break;
    case S3_KIND_HEAD:
        atomic_fetch_add(&c->n_head, 1);
        break;
    case S3_KIND_POST:
        break;
    }
}

static int prepare_call(struct call *k, struct err *err)
{
    const struct s3_http_req *r = k->r;
    s3_name(k->c, r->key, k->name, sizeof k->name);
    sigv4_sha256_hex(r->body ? (const void *)r->body : "", r->body_len, k->payload_hash);
    if (r->content_md5)
        sigv4_md5_base64(r->body ? (const void *)r->body : "", r->body_len, k->content_md5, NULL);
    if (r->verify_md5 && !r->ranged) {
        k->md5 = EVP_MD_CTX_new();
        if (k->md5 == NULL || EVP_DigestInit_ex(k->md5, EVP_md5(), NULL) != 1)
            return ERR(err, ENOMEM, "%s %s: cannot start MD5", r->op, k->name);
    }
    return 0;
}

int s3_http_do(struct s3_client *c, const struct s3_http_req *r, struct s3_http_resp *out,
               struct err *err)
{
    struct call k = {.c = c, .r = r, .resp = out};
    int max = c->conf.max_attempts > 0 ? c->conf.max_attempts : 1;
    enum verdict v = V_FAIL;
    struct err last = {0};
    int rc;

    memset(out, 0, sizeof *out);
    count_kind(c, r->kind);
    rc = prepare_call(&k, err);
    for (int attempt = 1; rc == 0 && attempt <= max; attempt++) {
        err_clear(&last);
        if (out->delivered > 0 && r->sink_rewind != NULL) {
            r->sink_rewind(r->sink_arg); /* restart the body rather than resume it */
            out->delivered = 0;
        }
        out->attempts = attempt;
        v = run_attempt(&k, &last);
        if (v != V_RETRY || attempt == max)
            break;
        long wait = backoff_ms(&c->conf, attempt);
        atomic_fetch_add(&c->n_retries, 1);
        LOG_WARN_RL(10000, "s3: retry op=%s key=%s http=%d attempt=%d/%d wait_ms=%ld reason=\"%s\"",
                    r->op, k.name, last.http_status, attempt, max, wait, last.msg);
        sleep_ms(wait);
    }
    if (rc == 0 && v == V_DONE)
        verify_done(&k, &last);
    else if (rc == 0 && v == V_RETRY) {
        size_t n = strnlen(last.msg, sizeof last.msg);
        snprintf(last.msg + n, sizeof last.msg - n, " after %d attempts", out->attempts);
    }
    if (rc == 0 && last.code) {
        rc = v == V_RETRY ? EAGAIN : last.code;
        if (err != NULL && err->code == 0) {
            *err = last;
            err->code = rc;
        }
        /* a missing object is an answer: optional objects (tombstones, leases) are read
         * routinely, and a healthy mount must not show failures */
        if (rc != ENOENT)
            atomic_fetch_add(&c->n_failures, 1);
    }
    EVP_MD_CTX_free(k.md5);
    return rc;
}
