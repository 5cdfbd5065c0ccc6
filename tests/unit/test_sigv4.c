/* tests/unit/test_sigv4.c - SigV4 against the AWS test suite (tests/vectors/sigv4, a copy of
 * ../shared/vectors/sigv4, Apache-2.0, see its LICENSE) and the S3 examples
 * (tests/vectors/s3-examples.md), plus canonical query encoding.
 * Vector rule: S3 never normalises paths, so a case marked "normalize": true whose path
 * normalisation would change (dot segments, "//") is skipped; every other case must match the
 * canonical request, string-to-sign, signature and Authorization exactly (header form) and the
 * canonical request and signature of the query (presigned) form. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s3/sigv4.h"

#define MAX_HEADERS 32

static bool has_vectors(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/tests/vectors/sigv4/LICENSE", dir);
    FILE *f = fopen(path, "r");
    if (f != NULL)
        fclose(f);
    return f != NULL;
}

/* tests/vectors of the repo: $BFS_ROOT, else the first ancestor of the binary or of the
 * working directory that has it. */
static char *vec_dir(void)
{
    char dir[4096], path[4200];
    const char *root = getenv("BFS_ROOT");
    if (root != NULL && has_vectors(root)) {
        snprintf(path, sizeof path, "%s/tests/vectors", root);
        return strdup(path);
    }
    for (int pass = 0; pass < 2; pass++) {
        ssize_t n = pass == 0 ? readlink("/proc/self/exe", dir, sizeof dir - 1) : -1;
        if (pass == 0 && n <= 0)
            continue;
        if (pass == 0)
            dir[n] = '\0';
        else if (getcwd(dir, sizeof dir) == NULL)
            break;
        for (char *slash; dir[0] != '\0'; *slash = '\0') {
            if (has_vectors(dir)) {
                snprintf(path, sizeof path, "%s/tests/vectors", dir);
                return strdup(path);
            }
            slash = strrchr(dir, '/');
            if (slash == NULL)
                break;
        }
    }
    return strdup("tests/vectors");
}

static char *slurp(const char *dir, const char *name, const char *file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", dir, name, file);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

/* Value of "key": "string" or "key": true|false in a flat JSON object (NULL when absent). */
static char *json_get(const char *json, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(json, pat);
    if (p == NULL)
        return NULL;
    p = strchr(p + strlen(pat), ':') + 1;
    while (*p == ' ')
        p++;
    if (*p == '"') {
        const char *e = strchr(p + 1, '"');
        return strndup(p + 1, (size_t)(e - p - 1));
    }
    size_t n = strcspn(p, ",\n}");
    return strndup(p, n);
}

static bool json_true(const char *json, const char *key)
{
    char *v = json_get(json, key);
    bool t = v != NULL && strcmp(v, "true") == 0;
    free(v);
    return t;
}

struct vreq {
    char method[16];
    char *path;  /* raw */
    char *query; /* after '?', or NULL */
    struct sigv4_header h[MAX_HEADERS];
    size_t n_h;
    char *body;
    char *storage;   /* owns the parsed text */
    char *joined[4]; /* continuation-joined values */
    size_t n_joined;
};

/* Parses request.txt: request line, "Name:value" headers (continuations start with space),
 * blank line, body. */
static void parse_request(char *text, struct vreq *r)
{
    memset(r, 0, sizeof *r);
    r->storage = text;
    char *line_end = strchr(text, '\n');
    *line_end = '\0';
    char *sp = strchr(text, ' ');
    *sp = '\0';
    snprintf(r->method, sizeof r->method, "%s", text);
    char *target = sp + 1;
    char *proto = strstr(target, " HTTP/");
    *proto = '\0';
    char *q = strchr(target, '?');
    if (q != NULL) {
        *q = '\0';
        r->query = q + 1;
    }
    r->path = target;
    char *p = line_end + 1;
    while (*p && *p != '\n') {
        char *e = strchr(p, '\n');
        if (e != NULL)
            *e = '\0';
        if ((*p == ' ' || *p == '\t') && r->n_h > 0) {
            /* continuation: join to the previous value with a space */
            const char *prev = r->h[r->n_h - 1].value;
            size_t n = strlen(prev) + strlen(p) + 2;
            char *joined = malloc(n);
            snprintf(joined, n, "%s %s", prev, p);
            r->h[r->n_h - 1].value = joined;
            if (r->n_joined > 0 && r->joined[r->n_joined - 1] == prev)
                free(r->joined[--r->n_joined]);
            r->joined[r->n_joined++] = joined;
        } else {
            char *colon = strchr(p, ':');
            *colon = '\0';
            r->h[r->n_h].name = p;
            r->h[r->n_h].value = colon + 1;
            r->n_h++;
        }
        p = e ? e + 1 : p + strlen(p);
    }
    r->body = *p == '\n' ? p + 1 : p;
}

static bool path_would_normalise(const char *path)
{
    return strstr(path, "//") || strstr(path, "/./") || strstr(path, "/../") ||
           (strlen(path) >= 2 && strcmp(path + strlen(path) - 2, "/.") == 0) ||
           (strlen(path) >= 3 && strcmp(path + strlen(path) - 3, "/..") == 0);
}

static void expect_file(const char *dir, const char *name, const char *file, const char *got)
{
    char *want = slurp(dir, name, file);
    cr_assert_not_null(want, "%s/%s missing", name, file);
    chomp(want);
    cr_expect_str_eq(got, want, "%s: %s differs:\n--- got\n%s\n--- want\n%s", name, file, got,
                     want);
    free(want);
}

/* Line starting with prefix in file (e.g. the Authorization line), without the prefix. */
static char *line_with(const char *dir, const char *name, const char *file, const char *prefix)
{
    char *s = slurp(dir, name, file);
    char *res = NULL;
    for (char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, prefix, strlen(prefix)) == 0) {
            res = strndup(l + strlen(prefix), strcspn(l + strlen(prefix), "\r\n"));
            break;
        }
    }
    free(s);
    return res;
}

static void run_case(const char *dir, const char *name, bool *checked)
{
    char *ctx = slurp(dir, name, "context.json");
    char *req_text = slurp(dir, name, "request.txt");
    cr_assert(ctx && req_text, "%s: missing files", name);
    struct vreq r;
    parse_request(req_text, &r);
    *checked = !(json_true(ctx, "normalize") && path_would_normalise(r.path));
    if (!*checked) {
        free(ctx);
        free(req_text);
        return;
    }
    char *akid = json_get(ctx, "access_key_id"), *secret = json_get(ctx, "secret_access_key");
    char *token = json_get(ctx, "token"), *region = json_get(ctx, "region");
    char *service = json_get(ctx, "service"), *ts = json_get(ctx, "timestamp");
    bool omit_token = json_true(ctx, "omit_session_token");
    char date[SIGV4_DATE_LEN + 1];
    snprintf(date, sizeof date, "%.4s%.2s%.2sT%.2s%.2s%.2sZ", ts, ts + 5, ts + 8, ts + 11, ts + 14,
             ts + 17);
    char body_hash[65];
    sigv4_sha256_hex(r.body, strlen(r.body), body_hash);
    struct sigv4_key k = {akid, secret, region, service};
    struct sigv4_request sr = {.method = r.method,
                               .path = r.path,
                               .query = r.query,
                               .headers = r.h,
                               .n_headers = r.n_h,
                               .payload_hash = body_hash,
                               .amz_date = date};
    struct err err = {0};
    struct sigv4_out out;

    /* query form first: headers as in the request */
    sigv4_out_init(&out);
    cr_assert_eq(sigv4_presign(&k, &sr, omit_token ? NULL : token, 3600, &out, &err), 0, "%s",
                 err.msg);
    expect_file(dir, name, "query-canonical-request.txt", (char *)out.canonical_request.data);
    expect_file(dir, name, "query-string-to-sign.txt", (char *)out.string_to_sign.data);
    expect_file(dir, name, "query-signature.txt", out.signature);
    sigv4_out_free(&out);

    /* header form: x-amz-date, token, content hash added like a client would */
    r.h[r.n_h++] = (struct sigv4_header){"X-Amz-Date", date};
    if (token && !omit_token)
        r.h[r.n_h++] = (struct sigv4_header){"X-Amz-Security-Token", token};
    if (json_true(ctx, "sign_body"))
        r.h[r.n_h++] = (struct sigv4_header){"X-Amz-Content-Sha256", body_hash};
    sr.n_headers = r.n_h;
    sigv4_out_init(&out);
    cr_assert_eq(sigv4_sign(&k, &sr, &out, &err), 0, "%s", err.msg);
    expect_file(dir, name, "header-canonical-request.txt", (char *)out.canonical_request.data);
    expect_file(dir, name, "header-string-to-sign.txt", (char *)out.string_to_sign.data);
    expect_file(dir, name, "header-signature.txt", out.signature);
    char *auth = line_with(dir, name, "header-signed-request.txt", "Authorization:");
    cr_expect_str_eq((char *)out.authorization.data, auth, "%s: Authorization", name);
    free(auth);
    sigv4_out_free(&out);
    for (size_t i = 0; i < r.n_joined; i++)
        free(r.joined[i]);
    free(akid), free(secret), free(token), free(region), free(service), free(ts);
    free(ctx);
    free(req_text);
}

Test(sigv4, aws_suite_vectors_match_s3_rules)
{
    char *dir = vec_dir();
    char sdir[4200];
    snprintf(sdir, sizeof sdir, "%s/sigv4", dir);
    DIR *d = opendir(sdir);
    cr_assert_not_null(d, "cannot open %s (run from the repo root)", sdir);
    int n_checked = 0, n_unnormalised = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "LICENSE") == 0)
            continue;
        bool checked = false;
        run_case(sdir, e->d_name, &checked);
        n_checked += checked;
        n_unnormalised += checked && strstr(e->d_name, "-unnormalized") != NULL;
    }
    closedir(d);
    free(dir);
    cr_expect_eq(n_unnormalised, 7, "every \"normalize\": false case must run");
    cr_expect_geq(n_checked, 31, "only path-normalising cases may be skipped (ran %d)", n_checked);
}

/* --- S3 examples (s3-examples.md) --- */

static const struct sigv4_key s3_key = {
    "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1", "s3"};
#define S3_HOST "examplebucket.s3.amazonaws.com"
#define S3_DATE "20130524T000000Z"

static void s3_case(const char *method, const char *path, const char *query,
                    const struct sigv4_header *extra, size_t n_extra, const char *payload_hash,
                    const char *want_signed, const char *want_sig, struct sigv4_out *out)
{
    struct sigv4_header h[8] = {
        {"Host", S3_HOST}, {"x-amz-date", S3_DATE}, {"x-amz-content-sha256", payload_hash}};
    size_t n = 3;
    for (size_t i = 0; i < n_extra; i++)
        h[n++] = extra[i];
    struct sigv4_request r = {method, path, query, h, n, payload_hash, S3_DATE};
    struct err err = {0};
    sigv4_out_init(out);
    cr_assert_eq(sigv4_sign(&s3_key, &r, out, &err), 0, "%s", err.msg);
    cr_expect_eq(out->signature[64], '\0');
    cr_expect_str_eq(out->signature, want_sig, "%s %s", method, path);
    char want_auth[512];
    snprintf(want_auth, sizeof want_auth,
             "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
             "aws4_request, SignedHeaders=%s, Signature=%s",
             want_signed, want_sig);
    cr_expect_str_eq((char *)out->authorization.data, want_auth);
}

Test(sigv4, s3_get_object)
{
    struct sigv4_header range = {"Range", "bytes=0-9"};
    struct sigv4_out out;
    s3_case("GET", "/test.txt", NULL, &range, 1, SIGV4_EMPTY_SHA256,
            "host;range;x-amz-content-sha256;x-amz-date",
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41", &out);
    char h[65];
    sigv4_sha256_hex(out.canonical_request.data, out.canonical_request.len, h);
    cr_expect_str_eq(h, "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    sigv4_out_free(&out);
}

Test(sigv4, s3_put_object_encodes_dollar)
{
    const char *body = "Welcome to Amazon S3.";
    char hash[65];
    sigv4_sha256_hex(body, strlen(body), hash);
    cr_assert_str_eq(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    struct sigv4_header extra[] = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                                   {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
    struct sigv4_out out;
    s3_case("PUT", "/test$file.text", NULL, extra, 2, hash,
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd", &out);
    cr_expect(strstr((char *)out.canonical_request.data, "\n/test%24file.text\n") != NULL);
    cr_expect(strstr((char *)out.string_to_sign.data,
                     "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d") != NULL);
    sigv4_out_free(&out);
}

Test(sigv4, s3_get_bucket_lifecycle)
{
    struct sigv4_out out;
    s3_case("GET", "/", "lifecycle", NULL, 0, SIGV4_EMPTY_SHA256,
            "host;x-amz-content-sha256;x-amz-date",
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543", &out);
    cr_expect(strstr((char *)out.canonical_request.data, "\n/\nlifecycle=\n") != NULL);
    sigv4_out_free(&out);
}

Test(sigv4, s3_list_bucket)
{
    struct sigv4_out out;
    s3_case("GET", "/", "prefix=J&max-keys=2", NULL, 0, SIGV4_EMPTY_SHA256,
            "host;x-amz-content-sha256;x-amz-date",
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7", &out);
    cr_expect(strstr((char *)out.canonical_request.data, "\nmax-keys=2&prefix=J\n") != NULL);
    sigv4_out_free(&out);
}

Test(sigv4, s3_presigned_get)
{
    struct sigv4_header h = {"Host", S3_HOST};
    struct sigv4_request r = {"GET", "/test.txt", NULL, &h, 1, SIGV4_UNSIGNED_PAYLOAD, S3_DATE};
    struct sigv4_out out;
    struct err err = {0};
    sigv4_out_init(&out);
    cr_assert_eq(sigv4_presign(&s3_key, &r, NULL, 86400, &out, &err), 0, "%s", err.msg);
    cr_expect_str_eq(out.signature,
                     "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    cr_expect_str_eq((char *)out.authorization.data,
                     "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F"
                     "20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-"
                     "Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature="
                     "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    sigv4_out_free(&out);
}

/* --- canonical query and URI encoding --- */

static void expect_query(const char *in, const char *want)
{
    struct buf b;
    buf_init(&b, 1 << 16);
    cr_assert_eq(sigv4_canonical_query(&b, in), 0);
    cr_expect_str_eq(b.data ? (char *)b.data : "", want, "query %s", in);
    buf_free(&b);
}

Test(sigv4, canonical_query_reserved_space_utf8_empty)
{
    expect_query("", "");
    expect_query("uploads", "uploads=");
    expect_query("b=2&a=1&a=0", "a=0&a=1&b=2");
    expect_query("prefix=a b", "prefix=a%20b");
    expect_query("prefix=a%20b", "prefix=a%20b");
    expect_query("prefix=a+b", "prefix=a%2Bb"); /* '+' is a literal plus, not a space */
    expect_query("delimiter=/", "delimiter=%2F");
    expect_query("k=!*'();:@&=+$,/?#[]", "=%2B%24%2C%2F%3F%23%5B%5D&k=%21%2A%27%28%29%3B%3A%40");
    expect_query("k=%21%2a%27%28%29", "k=%21%2A%27%28%29"); /* lower-case escapes normalised */
    expect_query("prefix=\xe1\x88\xb4", "prefix=%E1%88%B4");
    expect_query("a=&b", "a=&b=");
    expect_query("&&x=1&&", "x=1");
    expect_query("continuation-token=1/abc==&list-type=2",
                 "continuation-token=1%2Fabc%3D%3D&list-type=2");
    expect_query("k=100%", "k=100%25");                 /* malformed escape stays literal */
    expect_query("Z=1&a=1&_=1&-=1", "-=1&Z=1&_=1&a=1"); /* byte order, not locale */
}

Test(sigv4, uri_encode_keeps_slash_only_in_paths)
{
    struct buf b;
    buf_init(&b, 1 << 16);
    const char *key = "/bucket/db-1/a b+c~d*e%f\xc3\xa9";
    cr_assert_eq(sigv4_uri_encode(&b, key, strlen(key), 1), 0);
    cr_expect_str_eq((char *)b.data, "/bucket/db-1/a%20b%2Bc~d%2Ae%25f%C3%A9");
    buf_reset(&b);
    cr_assert_eq(sigv4_uri_encode(&b, "a/b", 3, 0), 0);
    cr_expect_str_eq((char *)b.data, "a%2Fb");
    buf_free(&b);
}

Test(sigv4, header_values_trimmed_and_duplicates_joined)
{
    struct sigv4_header h[] = {{"Host", "h"},
                               {"X-B", "  two   words  "},
                               {"x-a", "1"},
                               {"X-A", "\t2 "},
                               {"x-amz-date", "20150830T123600Z"}};
    struct sigv4_request r = {"GET", "/", NULL, h, 5, SIGV4_EMPTY_SHA256, "20150830T123600Z"};
    struct sigv4_key k = {"id:with:colons", "s", "r", "s3"};
    struct sigv4_out out;
    struct err err = {0};
    sigv4_out_init(&out);
    cr_assert_eq(sigv4_sign(&k, &r, &out, &err), 0);
    cr_expect_str_eq((char *)out.canonical_request.data,
                     "GET\n/\n\nhost:h\nx-a:1,2\nx-amz-date:20150830T123600Z\nx-b:two words\n\n"
                     "host;x-a;x-amz-date;x-b\n" SIGV4_EMPTY_SHA256);
    cr_expect(strncmp((char *)out.authorization.data,
                      "AWS4-HMAC-SHA256 Credential=id:with:colons/20150830/r/s3/aws4_request, ",
                      71) == 0);
    sigv4_out_free(&out);
}

Test(sigv4, rejects_incomplete_input)
{
    struct sigv4_request r = {"GET", "/", NULL, NULL, 0, SIGV4_EMPTY_SHA256, "2015"};
    struct sigv4_key k = {"a", "b", "r", "s3"};
    struct sigv4_out out;
    struct err err = {0};
    sigv4_out_init(&out);
    cr_expect_eq(sigv4_sign(&k, &r, &out, &err), EINVAL);
    cr_expect(strstr(err.msg, "sigv4") != NULL);
    sigv4_out_free(&out);
}

Test(sigv4, format_date_is_utc)
{
    char d[SIGV4_DATE_LEN + 1];
    sigv4_format_date(1440938160, d); /* 2015-08-30T12:36:00Z */
    cr_expect_str_eq(d, "20150830T123600Z");
}
