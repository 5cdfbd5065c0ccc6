/* s3/sigv4.c - AWS Signature Version 4 for S3 (see sigv4.h for the contract).
 *
 * Canonical request (S3 rules: the path is encoded once, never normalised):
 *   METHOD \n URI-encoded path \n canonical query \n
 *   lower(name):trimmed value \n ... (sorted by name, duplicates joined with ',') \n
 *   signed header names joined with ';' \n payload hash
 * String to sign: "AWS4-HMAC-SHA256" \n date \n scope \n hex(sha256(canonical request))
 * Signing key: HMAC chain "AWS4"+secret -> yyyymmdd -> region -> service -> "aws4_request". */
#include "s3/sigv4.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGV4_MAX_TEXT (1u << 20) /* cap on any canonical text we build */

void sigv4_out_init(struct sigv4_out *o)
{
    buf_init(&o->canonical_request, SIGV4_MAX_TEXT);
    buf_init(&o->string_to_sign, SIGV4_MAX_TEXT);
    buf_init(&o->authorization, SIGV4_MAX_TEXT);
    o->signature[0] = '\0';
}

void sigv4_out_free(struct sigv4_out *o)
{
    buf_free(&o->canonical_request);
    buf_free(&o->string_to_sign);
    buf_free(&o->authorization);
    OPENSSL_cleanse(o->signature, sizeof o->signature);
}

void sigv4_hex(const uint8_t *p, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * len] = '\0';
}

void sigv4_sha256_hex(const void *p, size_t len, char out[65])
{
    uint8_t md[32];
    unsigned int n = 0;
    EVP_Digest(p, len, md, &n, EVP_sha256(), NULL);
    sigv4_hex(md, 32, out);
}

void sigv4_md5_base64(const void *p, size_t len, char out[25], uint8_t md5_out[16])
{
    uint8_t md[16];
    unsigned int n = 0;
    EVP_Digest(p, len, md, &n, EVP_md5(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, 16);
    if (md5_out != NULL)
        memcpy(md5_out, md, 16);
}

void sigv4_format_date(time_t t, char *out)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, SIGV4_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int sigv4_uri_encode(struct buf *b, const char *s, size_t len, int keep_slash)
{
    static const char digits[] = "0123456789ABCDEF";
    int rc = buf_reserve(b, len * 3);
    if (rc)
        return rc;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/')) {
            b->data[b->len++] = c;
        } else {
            b->data[b->len++] = '%';
            b->data[b->len++] = (uint8_t)digits[c >> 4];
            b->data[b->len++] = (uint8_t)digits[c & 15];
        }
    }
    b->data[b->len] = '\0';
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX in s[0..len) (malformed escapes stay literal) and appends it encoded. */
static int reencode(struct buf *b, const char *s, size_t len)
{
    char *tmp = malloc(len + 1);
    size_t n = 0;
    if (tmp == NULL)
        return ENOMEM;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            tmp[n++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            tmp[n++] = s[i];
        }
    }
    int rc = sigv4_uri_encode(b, tmp, n, 0);
    free(tmp);
    return rc;
}

struct qpair {
    char *key; /* encoded */
    char *val; /* encoded */
};

static int cmp_qpair(const void *a, const void *b)
{
    const struct qpair *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->val, y->val);
}

static char *encoded_dup(const char *s, size_t len, int *rc)
{
    struct buf b;
    buf_init(&b, SIGV4_MAX_TEXT);
    *rc = reencode(&b, s, len);
    if (*rc)
        return NULL;
    if (b.data == NULL) {
        char *e = strdup("");
        *rc = e ? 0 : ENOMEM;
        return e;
    }
    return (char *)buf_steal(&b, NULL);
}

static void free_pairs(struct qpair *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].key);
        free(p[i].val);
    }
    free(p);
}

/* Splits q on '&' into encoded pairs (empty pieces skipped). */
static int split_query(const char *q, struct qpair **out, size_t *n_out)
{
    size_t cap = 1, n = 0;
    int rc = 0;
    for (const char *s = q; *s; s++)
        cap += *s == '&';
    struct qpair *p = calloc(cap, sizeof *p);
    if (p == NULL)
        return ENOMEM;
    const char *s = q;
    while (*s && rc == 0) {
        size_t len = strcspn(s, "&");
        if (len > 0) {
            const char *eq = memchr(s, '=', len);
            size_t klen = eq ? (size_t)(eq - s) : len;
            p[n].key = encoded_dup(s, klen, &rc);
            if (rc == 0)
                p[n].val = eq ? encoded_dup(eq + 1, len - klen - 1, &rc) : strdup("");
            if (rc == 0 && p[n].val == NULL)
                rc = ENOMEM;
            n++;
        }
        s += len;
        if (*s == '&')
            s++;
    }
    if (rc) {
        free_pairs(p, n);
        return rc;
    }
    *out = p;
    *n_out = n;
    return 0;
}

int sigv4_canonical_query(struct buf *b, const char *q)
{
    struct qpair *p = NULL;
    size_t n = 0;
    int rc;

    if (q == NULL || *q == '\0')
        return buf_append(b, "", 0);
    rc = split_query(q, &p, &n);
    if (rc)
        return rc;
    qsort(p, n, sizeof *p, cmp_qpair);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = buf_appendf(b, "%s%s=%s", i ? "&" : "", p[i].key, p[i].val);
    if (rc == 0 && n == 0)
        rc = buf_append(b, "", 0);
    free_pairs(p, n);
    return rc;
}

struct hdr_ref {
    size_t index;
    char *name; /* lower-cased copy */
};

static int cmp_hdr(const void *a, const void *b)
{
    const struct hdr_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Appends v trimmed with inner whitespace runs collapsed to one space. */
static int append_trimmed(struct buf *b, const char *v)
{
    int rc = 0;
    bool pending_space = false, any = false;
    for (; *v && rc == 0; v++) {
        if (is_space(*v)) {
            pending_space = any;
            continue;
        }
        if (pending_space)
            rc = buf_append(b, " ", 1);
        if (rc == 0)
            rc = buf_append(b, v, 1);
        pending_space = false;
        any = true;
    }
    return rc;
}

/* Appends the canonical headers block to cr and the signed-header list to signed_out. */
static int canonical_headers(const struct sigv4_request *r, struct buf *cr, struct buf *signed_out)
{
    struct hdr_ref *h = calloc(r->n_headers ? r->n_headers : 1, sizeof *h);
    int rc = 0;
    if (h == NULL)
        return ENOMEM;
    for (size_t i = 0; i < r->n_headers && rc == 0; i++) {
        h[i].index = i;
        h[i].name = strdup(r->headers[i].name);
        if (h[i].name == NULL)
            rc = ENOMEM;
        for (char *c = h[i].name; c && *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
    }
    if (rc == 0)
        qsort(h, r->n_headers, sizeof *h, cmp_hdr);
    for (size_t i = 0; i < r->n_headers && rc == 0; i++) {
        bool same = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
        bool last = i + 1 == r->n_headers || strcmp(h[i].name, h[i + 1].name) != 0;
        if (same)
            rc = buf_append(cr, ",", 1);
        else {
            rc = buf_appendf(cr, "%s:", h[i].name);
            if (rc == 0)
                rc = buf_appendf(signed_out, "%s%s", signed_out->len ? ";" : "", h[i].name);
        }
        if (rc == 0)
            rc = append_trimmed(cr, r->headers[h[i].index].value);
        if (rc == 0 && last)
            rc = buf_append(cr, "\n", 1);
    }
    for (size_t i = 0; i < r->n_headers; i++)
        free(h[i].name);
    free(h);
    return rc;
}

static int canonical_request(const struct sigv4_request *r, const char *query, struct buf *cr,
                             struct buf *signed_out)
{
    const char *path = r->path && *r->path ? r->path : "/";
    int rc = buf_appendf(cr, "%s\n", r->method);
    if (rc == 0)
        rc = sigv4_uri_encode(cr, path, strlen(path), 1);
    if (rc == 0)
        rc = buf_append(cr, "\n", 1);
    if (rc == 0)
        rc = sigv4_canonical_query(cr, query);
    if (rc == 0)
        rc = buf_append(cr, "\n", 1);
    if (rc == 0)
        rc = canonical_headers(r, cr, signed_out);
    if (rc == 0)
        rc = buf_appendf(cr, "\n%s\n%s", signed_out->data ? (char *)signed_out->data : "",
                         r->payload_hash);
    return rc;
}

static void hmac(const void *key, size_t key_len, const char *msg, uint8_t out[32])
{
    unsigned int n = 32;
    HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, strlen(msg), out, &n);
}

/* String to sign from the canonical request; signature hex into out->signature. */
static int sign_canonical(const struct sigv4_key *k, const struct sigv4_request *r,
                          struct sigv4_out *out)
{
    char date8[9], cr_hash[65];
    uint8_t key[32];
    size_t slen = strlen(k->secret_access_key);
    char *kinit = malloc(slen + 5);
    int rc;

    if (kinit == NULL)
        return ENOMEM;
    memcpy(date8, r->amz_date, 8);
    date8[8] = '\0';
    sigv4_sha256_hex(out->canonical_request.data, out->canonical_request.len, cr_hash);
    rc = buf_appendf(&out->string_to_sign, SIGV4_ALGORITHM "\n%s\n%s/%s/%s/aws4_request\n%s",
                     r->amz_date, date8, k->region, k->service, cr_hash);
    memcpy(kinit, "AWS4", 4);
    memcpy(kinit + 4, k->secret_access_key, slen + 1);
    hmac(kinit, slen + 4, date8, key);
    OPENSSL_cleanse(kinit, slen + 5);
    free(kinit);
    hmac(key, 32, k->region, key);
    hmac(key, 32, k->service, key);
    hmac(key, 32, "aws4_request", key);
    if (rc == 0) {
        uint8_t sig[32];
        hmac(key, 32, (const char *)out->string_to_sign.data, sig);
        sigv4_hex(sig, 32, out->signature);
    }
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

static int check_input(const struct sigv4_key *k, const struct sigv4_request *r, struct err *err)
{
    if (k->access_key_id == NULL || k->secret_access_key == NULL || k->region == NULL ||
        k->service == NULL || r->method == NULL || r->payload_hash == NULL || r->amz_date == NULL ||
        strlen(r->amz_date) != SIGV4_DATE_LEN)
        return ERR(err, EINVAL, "sigv4: incomplete request or credentials");
    return 0;
}

int sigv4_sign(const struct sigv4_key *k, const struct sigv4_request *r, struct sigv4_out *out,
               struct err *err)
{
    struct buf signed_headers;
    int rc = check_input(k, r, err);
    if (rc)
        return rc;
    buf_init(&signed_headers, SIGV4_MAX_TEXT);
    rc = canonical_request(r, r->query, &out->canonical_request, &signed_headers);
    if (rc == 0)
        rc = sign_canonical(k, r, out);
    if (rc == 0)
        rc = buf_appendf(&out->authorization,
                         SIGV4_ALGORITHM " Credential=%s/%.8s/%s/%s/aws4_request, "
                                         "SignedHeaders=%s, Signature=%s",
                         k->access_key_id, r->amz_date, k->region, k->service,
                         (char *)signed_headers.data, out->signature);
    buf_free(&signed_headers);
    if (rc)
        return ERR(err, rc, "sigv4: cannot build the signature (%s)", errno_name(rc));
    return 0;
}

/* Appends "&name=" + encoded value (or without '&' when b is empty). */
static int add_param(struct buf *b, const char *name, const char *value)
{
    int rc = buf_appendf(b, "%s%s=", b->len ? "&" : "", name);
    if (rc == 0)
        rc = sigv4_uri_encode(b, value, strlen(value), 0);
    return rc;
}

static int signed_header_names(const struct sigv4_request *r, struct buf *names)
{
    struct buf scratch;
    buf_init(&scratch, SIGV4_MAX_TEXT);
    int rc = canonical_headers(r, &scratch, names);
    buf_free(&scratch);
    return rc;
}

int sigv4_presign(const struct sigv4_key *k, const struct sigv4_request *r, const char *token,
                  unsigned expires_s, struct sigv4_out *out, struct err *err)
{
    struct buf q, names, cred, signed_headers;
    char expires[16];
    int rc = check_input(k, r, err);
    if (rc)
        return rc;
    buf_init(&q, SIGV4_MAX_TEXT);
    buf_init(&names, SIGV4_MAX_TEXT);
    buf_init(&cred, SIGV4_MAX_TEXT);
    buf_init(&signed_headers, SIGV4_MAX_TEXT);
    snprintf(expires, sizeof expires, "%u", expires_s);
    rc = buf_appendf(&q, "%s", r->query ? r->query : "");
    if (rc == 0)
        rc = signed_header_names(r, &names);
    if (rc == 0)
        rc = buf_appendf(&cred, "%s/%.8s/%s/%s/aws4_request", k->access_key_id, r->amz_date,
                         k->region, k->service);
    if (rc == 0)
        rc = add_param(&q, "X-Amz-Algorithm", SIGV4_ALGORITHM);
    if (rc == 0)
        rc = add_param(&q, "X-Amz-Credential", (char *)cred.data);
    if (rc == 0)
        rc = add_param(&q, "X-Amz-Date", r->amz_date);
    if (rc == 0)
        rc = add_param(&q, "X-Amz-Expires", expires);
    if (rc == 0 && token != NULL)
        rc = add_param(&q, "X-Amz-Security-Token", token);
    if (rc == 0)
        rc = add_param(&q, "X-Amz-SignedHeaders", names.data ? (char *)names.data : "");
    if (rc == 0)
        rc = canonical_request(r, (char *)q.data, &out->canonical_request, &signed_headers);
    if (rc == 0)
        rc = sign_canonical(k, r, out);
    if (rc == 0)
        rc = sigv4_canonical_query(&out->authorization, (char *)q.data);
    if (rc == 0)
        rc = buf_appendf(&out->authorization, "&X-Amz-Signature=%s", out->signature);
    buf_free(&q);
    buf_free(&names);
    buf_free(&cred);
    buf_free(&signed_headers);
    if (rc)
        return ERR(err, rc, "sigv4: cannot build the presigned query (%s)", errno_name(rc));
    return 0;
}
