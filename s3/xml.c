/* s3/xml.c - S3 XML documents with expat (see xml.h). One generic walker keeps the path of
 * element names ("ListBucketResult/Contents/Key") and the text of the current element, and
 * calls a per-document handler at every element end; handlers fill their structs. */
#include "s3/xml.h"

#include <errno.h>
#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XML_MAX_PATH 256
#define XML_MAX_DEPTH 16

typedef int xml_end_fn(void *arg, const char *path, const char *text, size_t text_len);

struct walk {
    XML_Parser parser;
    char path[XML_MAX_PATH];
    size_t path_len;
    size_t depth;
    size_t saved_len[XML_MAX_DEPTH + 1];
    struct buf text;
    xml_end_fn *cb;
    void *arg;
    int rc;
};

static void stop(struct walk *w, int rc)
{
    if (w->rc == 0)
        w->rc = rc;
    XML_StopParser(w->parser, XML_FALSE);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct walk *w = ud;
    const char *local = strrchr(name, ':');
    (void)attrs;
    local = local ? local + 1 : name;
    size_t n = strlen(local);
    if (w->rc)
        return;
    if (w->depth >= XML_MAX_DEPTH || w->path_len + n + 2 > sizeof w->path) {
        stop(w, EBADMSG);
        return;
    }
    w->saved_len[w->depth++] = w->path_len;
    if (w->path_len)
        w->path[w->path_len++] = '/';
    memcpy(w->path + w->path_len, local, n + 1);
    w->path_len += n;
    buf_reset(&w->text);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    struct walk *w = ud;
    (void)name;
    if (w->rc)
        return;
    int rc = w->cb(w->arg, w->path, w->text.data ? (char *)w->text.data : "", w->text.len);
    if (rc) {
        stop(w, rc);
        return;
    }
    w->path_len = w->saved_len[--w->depth];
    w->path[w->path_len] = '\0';
    buf_reset(&w->text);
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    struct walk *w = ud;
    if (w->rc)
        return;
    int rc = buf_append(&w->text, s, (size_t)len);
    if (rc) {
        buf_init(&w->text, XML_MAX_TEXT);
        stop(w, rc);
    }
}

/* Parses data, calling cb at every element end. */
static int xml_walk(const char *data, size_t len, xml_end_fn *cb, void *arg, struct err *err)
{
    struct walk w = {.cb = cb, .arg = arg};
    buf_init(&w.text, XML_MAX_TEXT);
    w.parser = XML_ParserCreate(NULL);
    if (w.parser == NULL)
        return ERR(err, ENOMEM, "xml: cannot create a parser");
    XML_SetUserData(w.parser, &w);
    XML_SetElementHandler(w.parser, on_start, on_end);
    XML_SetCharacterDataHandler(w.parser, on_text);
    enum XML_Status st = XML_Parse(w.parser, data ? data : "", (int)len, XML_TRUE);
    int rc = w.rc;
    if (rc == 0 && st != XML_STATUS_OK)
        rc = ERR(err, EBADMSG, "xml: %s at line %lu", XML_ErrorString(XML_GetErrorCode(w.parser)),
                 (unsigned long)XML_GetCurrentLineNumber(w.parser));
    else if (rc)
        ERR(err, rc, "xml: %s at line %lu",
            rc == EMSGSIZE  ? "text node too long"
            : rc == EBADMSG ? "unexpected element or nesting"
                            : errno_name(rc),
            (unsigned long)XML_GetCurrentLineNumber(w.parser));
    XML_ParserFree(w.parser);
    buf_free(&w.text);
    return rc;
}

/* True when path is prefix or below it. */
static bool under(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(path, prefix, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static void copy_text(char *dst, size_t cap, const char *text, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, text, len);
    dst[len] = '\0';
}

void xml_unquote_etag(const char *s, size_t len, char out[80])
{
    while (len > 0 && (*s == '"' || *s == ' ' || *s == '\n')) {
        s++;
        len--;
    }
    while (len > 0 &&
           (s[len - 1] == '"' || s[len - 1] == ' ' || s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    copy_text(out, 80, s, len);
}

time_t xml_parse_time(const char *s)
{
    struct tm tm = {0};
    int y, mo, d, h, mi, sec;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6)
        return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    return timegm(&tm);
}

/* ---- Error ---- */

struct error_ctx {
    struct xml_s3_error *out;
    bool is_error;
};

static int error_end(void *arg, const char *path, const char *text, size_t len)
{
    struct error_ctx *c = arg;
    if (strcmp(path, "Error") == 0)
        c->is_error = true;
    else if (strcmp(path, "Error/Code") == 0)
        copy_text(c->out->code, sizeof c->out->code, text, len);
    else if (strcmp(path, "Error/Message") == 0)
        copy_text(c->out->message, sizeof c->out->message, text, len);
    else if (strcmp(path, "Error/Key") == 0)
        copy_text(c->out->key, sizeof c->out->key, text, len);
    return 0;
}

int xml_parse_error(const char *data, size_t len, struct xml_s3_error *out)
{
    struct error_ctx c = {.out = out};
    memset(out, 0, sizeof *out);
    int rc = xml_walk(data, len, error_end, &c, NULL);
    if (rc == 0 && (!c.is_error || out->code[0] == '\0'))
        rc = EBADMSG;
    return rc;
}

/* ---- ListBucketResult ---- */

struct list_ctx {
    struct s3_list_page *out;
    size_t cap_objects, cap_prefixes;
    struct s3_object_info cur;
    bool v1, is_list;
    char *next_marker;
};

static int push_object(struct list_ctx *c)
{
    struct s3_list_page *p = c->out;
    if (p->n_objects == c->cap_objects) {
        size_t ncap = c->cap_objects ? c->cap_objects * 2 : 64;
        struct s3_object_info *o = realloc(p->objects, ncap * sizeof *o);
        if (o == NULL)
            return ENOMEM;
        p->objects = o;
        c->cap_objects = ncap;
    }
    if (c->cur.key == NULL)
        return EBADMSG;
    p->objects[p->n_objects++] = c->cur;
    memset(&c->cur, 0, sizeof c->cur);
    return 0;
}

static int push_prefix(struct list_ctx *c, const char *text, size_t len)
{
    struct s3_list_page *p = c->out;
    if (p->n_prefixes == c->cap_prefixes) {
        size_t ncap = c->cap_prefixes ? c->cap_prefixes * 2 : 16;
        char **v = realloc(p->prefixes, ncap * sizeof *v);
        if (v == NULL)
            return ENOMEM;
        p->prefixes = v;
        c->cap_prefixes = ncap;
    }
    char *s = strndup(text, len);
    if (s == NULL)
        return ENOMEM;
    p->prefixes[p->n_prefixes++] = s;
    return 0;
}

static int set_str(char **dst, const char *text, size_t len)
{
    free(*dst);
    *dst = strndup(text, len);
    return *dst ? 0 : ENOMEM;
}

static int list_end(void *arg, const char *path, const char *text, size_t len)
{
    struct list_ctx *c = arg;
    if (!under(path, "ListBucketResult"))
        return EBADMSG;
    c->is_list = true;
    path += strlen("ListBucketResult");
    if (strcmp(path, "/Contents/Key") == 0)
        return set_str(&c->cur.key, text, len);
    if (strcmp(path, "/Contents/Size") == 0) {
        c->cur.size = strtoull(text, NULL, 10);
        return 0;
    }
    if (strcmp(path, "/Contents/ETag") == 0) {
        xml_unquote_etag(text, len, c->cur.etag);
        return 0;
    }
    if (strcmp(path, "/Contents/LastModified") == 0) {
        c->cur.last_modified = xml_parse_time(text);
        return 0;
    }
    if (strcmp(path, "/Contents") == 0)
        return push_object(c);
    if (strcmp(path, "/CommonPrefixes/Prefix") == 0)
        return push_prefix(c, text, len);
    if (strcmp(path, "/IsTruncated") == 0) {
        c->out->truncated = len >= 4 && strncmp(text, "true", 4) == 0;
        return 0;
    }
    if (!c->v1 && strcmp(path, "/NextContinuationToken") == 0)
        return set_str(&c->out->next, text, len);
    if (c->v1 && strcmp(path, "/NextMarker") == 0)
        return set_str(&c->next_marker, text, len);
    return 0;
}

void s3_list_page_free(struct s3_list_page *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n_objects; i++)
        free(p->objects[i].key);
    for (size_t i = 0; i < p->n_prefixes; i++)
        free(p->prefixes[i]);
    free(p->objects);
    free(p->prefixes);
    free(p->next);
    memset(p, 0, sizeof *p);
}

/* v1 without NextMarker: the greatest of the last key and the last prefix. */
static int v1_next(struct list_ctx *c)
{
    struct s3_list_page *p = c->out;
    const char *last = NULL;
    if (c->next_marker != NULL) {
        p->next = c->next_marker;
        c->next_marker = NULL;
        return 0;
    }
    if (p->n_objects)
        last = p->objects[p->n_objects - 1].key;
    if (p->n_prefixes && (last == NULL || strcmp(p->prefixes[p->n_prefixes - 1], last) > 0))
        last = p->prefixes[p->n_prefixes - 1];
    if (last == NULL)
        return EBADMSG;
    p->next = strdup(last);
    return p->next ? 0 : ENOMEM;
}

int xml_parse_list(const char *data, size_t len, bool v1, struct s3_list_page *out, struct err *err)
{
    struct list_ctx c = {.out = out, .v1 = v1};
    memset(out, 0, sizeof *out);
    int rc = xml_walk(data, len, list_end, &c, err);
    if (rc == 0 && !c.is_list)
        rc = ERR(err, EBADMSG, "xml: not a ListBucketResult");
    if (rc == 0 && out->truncated && v1)
        rc = v1_next(&c);
    if (rc == 0 && out->truncated && out->next == NULL)
        rc = ERR(err, EBADMSG, "xml: truncated listing without a continuation");
    if (rc == 0 && !out->truncated) {
        free(out->next);
        out->next = NULL;
    }
    free(c.cur.key);
    free(c.next_marker);
    if (rc) {
        ERR(err, rc, "xml: bad ListBucketResult (%s)", errno_name(rc));
        s3_list_page_free(out);
    }
    return rc;
}

/* ---- multipart ---- */

struct initiate_ctx {
    char *upload_id;
};

static int initiate_end(void *arg, const char *path, const char *text, size_t len)
{
    struct initiate_ctx *c = arg;
    if (!under(path, "InitiateMultipartUploadResult"))
        return EBADMSG;
    if (strcmp(path, "InitiateMultipartUploadResult/UploadId") == 0)
        return set_str(&c->upload_id, text, len);
    return 0;
}

int xml_parse_initiate(const char *data, size_t len, char **upload_id_out, struct err *err)
{
    struct initiate_ctx c = {0};
    int rc = xml_walk(data, len, initiate_end, &c, err);
    if (rc == 0 && (c.upload_id == NULL || c.upload_id[0] == '\0'))
        rc = EBADMSG;
    if (rc) {
        free(c.upload_id);
        return ERR(err, rc, "xml: bad InitiateMultipartUploadResult");
    }
    *upload_id_out = c.upload_id;
    return 0;
}

struct complete_ctx {
    char *etag;
    bool is_error, is_result;
    struct xml_s3_error *error;
};

static int complete_end(void *arg, const char *path, const char *text, size_t len)
{
    struct complete_ctx *c = arg;
    if (under(path, "Error")) {
        c->is_error = true;
        return error_end(&(struct error_ctx){.out = c->error}, path, text, len);
    }
    if (!under(path, "CompleteMultipartUploadResult"))
        return EBADMSG;
    c->is_result = true;
    if (strcmp(path, "CompleteMultipartUploadResult/ETag") == 0)
        xml_unquote_etag(text, len, c->etag);
    return 0;
}

int xml_parse_complete(const char *data, size_t len, char etag_out[80],
                       struct xml_s3_error *error_out, struct err *err)
{
    struct complete_ctx c = {.etag = etag_out, .error = error_out};
    etag_out[0] = '\0';
    memset(error_out, 0, sizeof *error_out);
    int rc = xml_walk(data, len, complete_end, &c, err);
    if (rc)
        return ERR(err, rc, "xml: bad CompleteMultipartUploadResult");
    if (c.is_error)
        return ERR(err, EAGAIN, "%s (%s)", error_out->code, error_out->message);
    if (!c.is_result)
        return ERR(err, EBADMSG, "xml: empty CompleteMultipartUploadResult");
    return 0;
}

struct delete_ctx {
    size_t n_deleted, n_errors;
    struct xml_s3_error cur, *first;
};

static int delete_end(void *arg, const char *path, const char *text, size_t len)
{
    struct delete_ctx *c = arg;
    if (!under(path, "DeleteResult"))
        return EBADMSG;
    path += strlen("DeleteResult");
    if (strcmp(path, "/Deleted") == 0)
        c->n_deleted++;
    else if (strcmp(path, "/Error/Key") == 0)
        copy_text(c->cur.key, sizeof c->cur.key, text, len);
    else if (strcmp(path, "/Error/Code") == 0)
        copy_text(c->cur.code, sizeof c->cur.code, text, len);
    else if (strcmp(path, "/Error/Message") == 0)
        copy_text(c->cur.message, sizeof c->cur.message, text, len);
    else if (strcmp(path, "/Error") == 0) {
        if (c->n_errors++ == 0)
            *c->first = c->cur;
        memset(&c->cur, 0, sizeof c->cur);
    }
    return 0;
}

int xml_parse_delete(const char *data, size_t len, size_t *n_deleted, size_t *n_errors,
                     struct xml_s3_error *first_error, struct err *err)
{
    struct delete_ctx c = {.first = first_error};
    memset(first_error, 0, sizeof *first_error);
    int rc = xml_walk(data, len, delete_end, &c, err);
    if (rc)
        return ERR(err, rc, "xml: bad DeleteResult");
    *n_deleted = c.n_deleted;
    *n_errors = c.n_errors;
    return 0;
}

/* ---- request bodies ---- */

int xml_escape(struct buf *b, const char *s)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        switch (*s) {
        case '&':
            rc = buf_append(b, "&amp;", 5);
            break;
        case '<':
            rc = buf_append(b, "&lt;", 4);
            break;
        case '>':
            rc = buf_append(b, "&gt;", 4);
            break;
        case '"':
            rc = buf_append(b, "&quot;", 6);
            break;
        case '\'':
            rc = buf_append(b, "&apos;", 6);
            break;
        case '\r':
            rc = buf_append(b, "&#13;", 5);
            break;
        case '\n':
            rc = buf_append(b, "&#10;", 5);
            break;
        case '\t':
            rc = buf_append(b, "&#9;", 4);
            break;
        default:
            rc = buf_append(b, s, 1);
        }
    }
    return rc;
}

int xml_build_delete(struct buf *b, const char *const *keys, size_t n_keys)
{
    int rc = buf_appendf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                            "<Delete><Quiet>true</Quiet>");
    for (size_t i = 0; i < n_keys && rc == 0; i++) {
        rc = buf_appendf(b, "<Object><Key>");
        if (rc == 0)
            rc = xml_escape(b, keys[i]);
        if (rc == 0)
            rc = buf_appendf(b, "</Key></Object>");
    }
    if (rc == 0)
        rc = buf_appendf(b, "</Delete>");
    return rc;
}

int xml_build_complete(struct buf *b, char (*const etags)[80], size_t n_parts)
{
    int rc = buf_appendf(b, "<CompleteMultipartUpload>");
    for (size_t i = 0; i < n_parts && rc == 0; i++)
        rc = buf_appendf(b, "<Part><PartNumber>%zu</PartNumber><ETag>\"%s\"</ETag></Part>", i + 1,
                         etags[i]);
    if (rc == 0)
        rc = buf_appendf(b, "</CompleteMultipartUpload>");
    return rc;
}
