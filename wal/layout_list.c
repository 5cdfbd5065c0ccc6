/* wal/layout_list.c - listing and small-object readers of the bucket layout on the S3 client
 * (contract in layout.h; kept apart from the pure code so that pure users need no S3). */
#include "wal/layout.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- listing */

struct gen_collect {
    const char *db;
    size_t db_len;
    struct gen_id *v;
    size_t n, cap;
};

static int gen_push(struct gen_id **v, size_t *n, size_t *cap, const struct gen_id *id)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct gen_id *nv = realloc(*v, nc * sizeof(*nv));
        if (!nv)
            return ENOMEM;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = *id;
    return 0;
}

static int collect_gen(void *arg, const struct s3_object_info *info, bool is_prefix)
{
    struct gen_collect *g = arg;
    const char *k = info->key;
    size_t klen = strlen(k);
    struct gen_id id;

    if (!is_prefix || klen != g->db_len + 1 + GEN_ID_STR_LEN + 1 || k[klen - 1] != '/')
        return 0;
    if (gen_id_parse(k + g->db_len + 1, GEN_ID_STR_LEN, &id, NULL))
        return 0;
    return gen_push(&g->v, &g->n, &g->cap, &id);
}

static int cmp_gen(const void *a, const void *b)
{
    return gen_id_cmp(a, b);
}

int layout_list_generations(struct s3_client *c, const char *db, struct gen_id **ids_out,
                            size_t *n_out, struct err *err)
{
    struct gen_collect g = {.db = db, .db_len = db ? strlen(db) : 0};
    struct s3_list_opts o = {0};
    char prefix[LAYOUT_KEY_MAX];
    int rc;

    *ids_out = NULL;
    *n_out = 0;
    if (!layout_db_name_valid(db))
        return ERR(err, EINVAL, "bad db_name '%s'", db ? db : "(null)");
    snprintf(prefix, sizeof(prefix), "%s-", db);
    o.prefix = prefix;
    o.delimiter = "/";
    rc = s3_list_all(c, &o, collect_gen, &g, err);
    if (rc) {
        free(g.v);
        if (rc == ENOMEM)
            ERR(err, ENOMEM, "list generations: out of memory");
        return rc;
    }
    if (g.n > 1)
        qsort(g.v, g.n, sizeof(*g.v), cmp_gen);
    *ids_out = g.v;
    *n_out = g.n;
    return 0;
}

struct name_collect {
    char **v;
    size_t n, cap;
    char **tomb; /* "<db>" of every "<db>.tombstone" object listed */
    size_t n_tomb, cap_tomb;
};

static int name_push(char ***v, size_t *n, size_t *cap, const char *k, size_t len)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        char **nv = realloc(*v, nc * sizeof(*nv));
        if (!nv)
            return ENOMEM;
        *v = nv;
        *cap = nc;
    }
    (*v)[*n] = strndup(k, len);
    if (!(*v)[*n])
        return ENOMEM;
    (*n)++;
    return 0;
}

static int collect_db(void *arg, const struct s3_object_info *info, bool is_prefix)
{
    struct name_collect *nc = arg;
    const char *k = info->key;
    size_t klen = strlen(k);
    const size_t tail = 1 + GEN_ID_STR_LEN + 1; /* "-<uuid>/" */
    const size_t tomb_len = strlen(LAYOUT_TOMBSTONE_SUFFIX);

    if (!is_prefix && klen > tomb_len && strcmp(k + klen - tomb_len, LAYOUT_TOMBSTONE_SUFFIX) == 0)
        return name_push(&nc->tomb, &nc->n_tomb, &nc->cap_tomb, k, klen - tomb_len);
    if (!is_prefix || klen <= tail || k[klen - 1] != '/' || k[klen - tail] != '-')
        return 0;
    if (!gen_id_valid(k + klen - tail + 1, GEN_ID_STR_LEN))
        return 0;
    size_t n = klen - tail;
    if (nc->n > 0 && strlen(nc->v[nc->n - 1]) == n && !memcmp(nc->v[nc->n - 1], k, n))
        return 0; /* same db as the previous prefix (listing is sorted) */
    return name_push(&nc->v, &nc->n, &nc->cap, k, n);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int layout_list_databases(struct s3_client *c, char ***names_out, bool **tombstoned_out,
                          size_t *n_out, struct err *err)
{
    struct name_collect nc = {0};
    struct s3_list_opts o = {0};
    bool *tomb = NULL;
    int rc;

    if (tombstoned_out)
        *tombstoned_out = NULL;
    o.delimiter = "/";
    rc = s3_list_all(c, &o, collect_db, &nc, err);
    if (rc) {
        layout_names_free(nc.v, nc.n);
        layout_names_free(nc.tomb, nc.n_tomb);
        if (rc == ENOMEM)
            ERR(err, ENOMEM, "list databases: out of memory");
        return rc;
    }
    /* names are sorted by "<db>-<uuid>/" order, which is not strictly name order: sort and
     * drop duplicates */
    if (nc.n > 1)
        qsort(nc.v, nc.n, sizeof(*nc.v), cmp_str);
    size_t w = 0;
    for (size_t i = 0; i < nc.n; i++) {
        if (w > 0 && !strcmp(nc.v[w - 1], nc.v[i])) {
            free(nc.v[i]);
            continue;
        }
        nc.v[w++] = nc.v[i];
    }
    if (tombstoned_out) {
        tomb = calloc(w ? w : 1, sizeof(*tomb));
        if (!tomb) {
            layout_names_free(nc.v, w);
            layout_names_free(nc.tomb, nc.n_tomb);
            return ERR(err, ENOMEM, "list databases: out of memory");
        }
        for (size_t i = 0; i < nc.n_tomb; i++) {
            char **hit = bsearch(&nc.tomb[i], nc.v, w, sizeof(*nc.v), cmp_str);
            if (hit)
                tomb[hit - nc.v] = true;
        }
        *tombstoned_out = tomb;
    }
    layout_names_free(nc.tomb, nc.n_tomb);
    *names_out = nc.v;
    *n_out = w;
    return 0;
}

void layout_names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

struct obj_collect {
    struct layout_objects *o;
    size_t cap;
};

static int collect_obj(void *arg, const struct s3_object_info *info, bool is_prefix)
{
    struct obj_collect *oc = arg;
    struct layout_objects *o = oc->o;

    if (is_prefix)
        return 0;
    if (o->n == oc->cap) {
        size_t cap = oc->cap ? oc->cap * 2 : 64;
        struct s3_object_info *v = realloc(o->v, cap * sizeof(*v));
        if (!v)
            return ENOMEM;
        o->v = v;
        oc->cap = cap;
    }
    o->v[o->n] = *info;
    o->v[o->n].key = strdup(info->key);
    if (!o->v[o->n].key)
        return ENOMEM;
    o->n++;
    return 0;
}

int layout_list_gen_objects(struct s3_client *c, const char *db, const struct gen_id *gen,
                            struct layout_objects *out, struct err *err)
{
    char prefix[LAYOUT_KEY_MAX];
    struct obj_collect oc = {.o = out};
    struct s3_list_opts o = {0};
    int rc;

    out->v = NULL;
    out->n = 0;
    rc = layout_key_gen_prefix(db, gen, prefix);
    if (rc)
        return ERR(err, rc, "bad db_name '%s'", db);
    o.prefix = prefix;
    rc = s3_list_all(c, &o, collect_obj, &oc, err);
    if (rc) {
        if (rc == ENOMEM)
            ERR(err, ENOMEM, "list %s: out of memory", prefix);
        layout_objects_free(out);
    }
    return rc;
}

void layout_objects_free(struct layout_objects *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n; i++)
        free(o->v[i].key);
    free(o->v);
    o->v = NULL;
    o->n = 0;
}

/* GET a small object; EBADMSG (naming the key) when its size is not want. */
static int read_small(struct s3_client *c, const char *key, size_t want, uint8_t *out,
                      struct err *err)
{
    struct buf b;
    int rc;

    struct err e = {0};

    buf_init(&b, 4096);
    rc = s3_get_object(c, key, &b, &e);
    if (rc == ENOENT) {
        /* missing is an answer, not a failure: err stays untouched */
    } else if (rc == EMSGSIZE) {
        rc = ERR(err, EBADMSG, "%s: object too large, want %zu bytes", key, want);
    } else if (rc) {
        ERR(err, rc, "%s", e.msg);
        if (err)
            err->http_status = e.http_status;
    } else if (!rc && b.len != want) {
        rc = ERR(err, EBADMSG, "%s: %zu bytes, want %zu", key, b.len, want);
    } else if (!rc) {
        memcpy(out, b.data, want);
    }
    buf_free(&b);
    return rc;
}

int layout_read_meta(struct s3_client *c, const char *db, const struct gen_id *gen,
                     struct gen_meta *out, struct err *err)
{
    char key[LAYOUT_KEY_MAX];
    uint8_t b[LAYOUT_META_BYTES];
    int rc = layout_key_meta(db, gen, key);

    if (rc)
        return ERR(err, rc, "bad db_name '%s'", db);
    rc = read_small(c, key, sizeof(b), b, err);
    if (!rc)
        rc = layout_meta_decode(b, sizeof(b), out, err);
    return rc;
}

int layout_read_dep(struct s3_client *c, const char *db, const struct gen_id *gen,
                    struct gen_id *parent_out, struct err *err)
{
    char key[LAYOUT_KEY_MAX];
    uint8_t b[LAYOUT_DEP_BYTES];
    int rc = layout_key_dep(db, gen, key);

    if (rc)
        return ERR(err, rc, "bad db_name '%s'", db);
    rc = read_small(c, key, sizeof(b), b, err);
    if (!rc)
        rc = layout_dep_decode(b, sizeof(b), parent_out, err);
    return rc;
}

int layout_read_changecounter(struct s3_client *c, const char *db, const struct gen_id *gen,
                              uint32_t *out, struct err *err)
{
    char key[LAYOUT_KEY_MAX];
    uint8_t b[LAYOUT_CHANGECOUNTER_BYTES];
    int rc = layout_key_changecounter(db, gen, key);

    if (rc)
        return ERR(err, rc, "bad db_name '%s'", db);
    rc = read_small(c, key, sizeof(b), b, err);
    if (!rc)
        rc = layout_changecounter_decode(b, sizeof(b), out, err);
    return rc;
}

int layout_read_tombstone(struct s3_client *c, const char *db, int64_t *out, struct err *err)
{
    char key[LAYOUT_KEY_MAX];
    uint8_t b[LAYOUT_TOMBSTONE_BYTES];
    int rc = layout_key_tombstone(db, key);

    if (rc)
        return ERR(err, rc, "bad db_name '%s'", db);
    rc = read_small(c, key, sizeof(b), b, err);
    if (!rc)
        rc = layout_tombstone_decode(b, sizeof(b), out, err);
    return rc;
}
