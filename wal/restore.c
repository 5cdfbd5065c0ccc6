/* wal/restore.c - restore engine (contract in restore.h; format in bottomless-format.md §5,
 * §10(b); our choices in docs/format.md "Restore").
 *
 * 1. Choose: newest generation / the given id / the newest created <= T. The tombstone
 *    (<db>.tombstone, i64 BE secs) hides every generation created at or before it.
 * 2. Chain: from the target, walk .dep links (<= LAYOUT_MAX_DEP_DEPTH, cycles and missing
 *    parents are errors) until a generation whose snapshot (db.zstd, db.gz, db.raw, db.db in
 *    that order) downloads and decodes; a corrupt snapshot falls back to the parent. No
 *    snapshot and no .dep: start from an empty file.
 * 3. Plan: for each generation oldest first, .meta (missing + batches, or wrong size: stop
 *    there); batch names (new and legacy) sorted by first frame, newest ts winning at the same
 *    first frame, a newer batch starting inside an older one's range supersedes its tail;
 *    a gap stops the plan (partial); with a point in time, a batch with ts > T ends it.
 * 4. Replay: batches are downloaded by worker threads into unlinked scratch files (a window of
 *    2 x parallel ahead of the consumer) and fed through the decompressor into
 *    restore_replay (checksums, complete transactions only).
 * 5. Finish: fsync the temp file, PRAGMA integrity_check on it, rename over the target, fsync
 *    the directory, remove <target>-wal / -shm. Any failure removes the temp file.
 * Corruption or a gap ends replay at the last complete transaction: partial result (default)
 * or failure (strict). Threads: the download workers touch only their job slots (under
 * pool.mu) and the thread-safe S3 client; everything else runs on the caller's thread. */
#include "wal/restore.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "wal/restore_replay.h"
#include "wal/walfmt.h"

/* Largest batch object restore_expected_size downloads to read a commit frame. */
#define EXPECTED_SIZE_BATCH_MAX (64u << 20)

#define RESTORE_DEFAULT_PARALLEL 4

void restore_opts_init(struct restore_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->parallel = RESTORE_DEFAULT_PARALLEL;
}

/* ---------------------------------------------------------------- helpers */

static int tmpfile_in(const char *dir, struct err *err)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    char path[4096];

    if (fd >= 0)
        return fd;
    snprintf(path, sizeof(path), "%s/.bfs-restore-scratch-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -ERR(err, errno, "scratch file in %s: %s", dir, errno_name(errno));
    unlink(path);
    return fd;
}

/* Directory part of path into out ("." when none). */
static void dir_of(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, cap, ".");
    else if (slash == path)
        snprintf(out, cap, "/");
    else
        snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* ---------------------------------------------------------------- choose */

int restore_choose_generation(struct s3_client *c, const char *db, const struct gen_id *gen,
                              bool has_time, int64_t time_s, struct gen_id *out,
                              struct err *err)
{
    struct gen_id *ids = NULL;
    size_t n = 0;
    int rc = layout_list_generations(c, db, &ids, &n, err);
    char g[GEN_ID_STR_LEN + 1];

    if (rc)
        return rc;
    rc = ENOENT;
    for (size_t i = 0; i < n; i++) {
        if (gen) {
            if (gen_id_eq(&ids[i], gen)) {
                *out = ids[i];
                rc = 0;
                break;
            }
        } else if (!has_time || gen_id_created_s(&ids[i]) <= time_s) {
            *out = ids[i];
            rc = 0;
            break;
        }
    }
    free(ids);
    if (rc == 0)
        return 0;
    if (gen) {
        gen_id_format(gen, g);
        return ERR(err, ENOENT, "generation %s not found for database %s", g, db);
    }
    if (has_time) {
        char t[32];
        layout_format_utc(time_s, t, sizeof(t));
        return ERR(err, ENOENT, "no generation of database %s created at or before %s%s", db, t,
                   n ? "" : " (database has no generations)");
    }
    return ERR(err, ENOENT, "no generation found for database %s", db);
}

/* ---------------------------------------------------------------- snapshot */

struct fd_writer {
    int fd;
    uint64_t off;
};

static int write_seq(void *arg, const uint8_t *p, size_t len)
{
    struct fd_writer *w = arg;
    int rc = fileio_pwrite_all(w->fd, p, len, w->off);
    if (!rc)
        w->off += len;
    return rc;
}

/* Finds the snapshot key in a generation listing (preference zstd, gz, raw, legacy db.db). */
static const struct s3_object_info *find_snapshot(const struct layout_objects *objs,
                                                  enum compression *comp_out)
{
    static const char *const names[] = {"db.zstd", "db.gz", "db.raw", "db.db"};
    for (size_t k = 0; k < 4; k++) {
        for (size_t i = 0; i < objs->n; i++) {
            const char *slash = strrchr(objs->v[i].key, '/');
            if (slash && !strcmp(slash + 1, names[k])) {
                layout_snapshot_parse(names[k], comp_out);
                return &objs->v[i];
            }
        }
    }
    return NULL;
}

/* Downloads and decodes the snapshot into fd (replacing its contents). EBADMSG when the
 * object is corrupt (bad compression or not an SQLite file). */
static int fetch_snapshot(struct s3_client *c, const char *key, enum compression comp, int fd,
                          const char *scratch_dir, uint64_t *obj_size, uint64_t *db_size,
                          struct err *err)
{
    int sfd = -1, rc;
    struct fd_writer w = {.fd = fd, .off = 0};
    uint8_t hdr[100];
    size_t got = 0;

    if (ftruncate(fd, 0) != 0)
        return ERR(err, errno, "truncate temp file: %s", errno_name(errno));
    if (comp == COMP_RAW) {
        rc = s3_get_object_to_fd(c, key, fd, obj_size, err);
        if (rc)
            return rc;
        w.off = *obj_size;
        if (ftruncate(fd, (off_t)w.off) != 0)
            return ERR(err, errno, "truncate temp file: %s", errno_name(errno));
    } else {
        sfd = tmpfile_in(scratch_dir, err);
        if (sfd < 0)
            return -sfd;
        rc = s3_get_object_to_fd(c, key, sfd, obj_size, err);
        if (!rc)
            rc = decompress_fd(comp, sfd, write_seq, &w, err);
        close(sfd);
        if (rc)
            return rc;
    }
    *db_size = w.off;
    if (w.off == 0)
        return 0;
    rc = fileio_pread_full(fd, hdr, sizeof(hdr), 0, &got);
    if (rc)
        return ERR(err, rc, "read temp file: %s", errno_name(rc));
    if (got < sizeof(hdr) || memcmp(hdr, "SQLite format 3", 16) != 0)
        return ERR(err, EBADMSG, "not an SQLite database (%llu bytes, bad header)",
                   (unsigned long long)w.off);
    return 0;
}

/* ---------------------------------------------------------------- download pool */

struct dl_job {
    const char *key; /* borrowed from the plan */
    int state;       /* 0 waiting, 1 running, 2 done */
    int fd;
    uint64_t size;
    int rc;
    struct err err;
};

struct dl_pool {
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* any state change */
    struct dl_job *jobs;
    size_t n, next, consumed, window;
    bool stop;
    struct s3_client *c;
    const char *scratch_dir;
    pthread_t *threads;
    int n_threads;
};

static void *dl_worker(void *arg)
{
    struct dl_pool *p = arg;

    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stop && p->next < p->n && p->next >= p->consumed + p->window)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop || p->next >= p->n) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        struct dl_job *j = &p->jobs[p->next++];
        j->state = 1;
        pthread_mutex_unlock(&p->mu);

        struct err e = {0};
        uint64_t size = 0;
        int fd = tmpfile_in(p->scratch_dir, &e);
        int rc = fd < 0 ? -fd : s3_get_object_to_fd(p->c, j->key, fd, &size, &e);
        if (rc && fd >= 0) {
            close(fd);
            fd = -1;
        }
        pthread_mutex_lock(&p->mu);
        j->fd = fd;
        j->size = size;
        j->rc = rc;
        j->err = e;
        j->state = 2;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

static int dl_start(struct dl_pool *p, struct s3_client *c, const char *scratch_dir,
                    const char *const *keys, size_t n, int n_threads, struct err *err)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->c = c;
    p->scratch_dir = scratch_dir;
    p->n = n;
    p->window = (size_t)n_threads * 2;
    p->jobs = calloc(n ? n : 1, sizeof(*p->jobs));
    p->threads = calloc((size_t)n_threads, sizeof(*p->threads));
    if (!p->jobs || !p->threads)
        return ERR(err, ENOMEM, "restore: out of memory");
    for (size_t i = 0; i < n; i++) {
        p->jobs[i].key = keys[i];
        p->jobs[i].fd = -1;
    }
    for (int i = 0; i < n_threads && (size_t)i < n; i++) {
        int rc = pthread_create(&p->threads[i], NULL, dl_worker, p);
        if (rc)
            return ERR(err, rc, "restore: start download thread: %s", errno_name(rc));
        p->n_threads++;
    }
    return 0;
}

static struct dl_job *dl_wait(struct dl_pool *p, size_t i)
{
    pthread_mutex_lock(&p->mu);
    while (p->jobs[i].state != 2)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return &p->jobs[i];
}

static void dl_consumed(struct dl_pool *p, size_t i)
{
    pthread_mutex_lock(&p->mu);
    if (p->jobs[i].fd >= 0) {
        close(p->jobs[i].fd);
        p->jobs[i].fd = -1;
    }
    p->consumed = i + 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void dl_stop(struct dl_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    for (size_t i = 0; i < p->n && p->jobs; i++)
        if (p->jobs[i].fd >= 0)
            close(p->jobs[i].fd);
    free(p->jobs);
    free(p->threads);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

/* ---------------------------------------------------------------- plan */

struct chain_gen {
    struct gen_id id;
    struct layout_objects objs;
    bool has_meta;
    struct gen_meta meta;
};

struct plan_entry {
    size_t gen; /* index into the chain (oldest first order is handled by caller) */
    const char *key;
    uint64_t size;
    struct batch_name b;
    uint32_t apply_last;
};

struct cand {
    struct batch_name b;
    const struct s3_object_info *obj;
};

static int cmp_cand(const void *x, const void *y)
{
    const struct cand *a = x, *b = y;
    if (a->b.first != b->b.first)
        return a->b.first < b->b.first ? -1 : 1;
    if (a->b.ts != b->b.ts)
        return a->b.ts > b->b.ts ? -1 : 1; /* newest first */
    if (a->b.last != b->b.last)
        return a->b.last > b->b.last ? -1 : 1;
    return strcmp(a->obj->key, b->obj->key);
}

struct rctx {
    struct s3_client *c;
    const struct restore_opts *o;
    struct restore_result *res;
    bool stopped; /* replay ended early (partial or point in time) */
    bool base_empty;       /* no snapshot under the chain: replay starts from an empty file */
    uint32_t missing_page; /* replay_first_missing_page() after the replay */
    uint32_t final_pages;  /* database size in pages after the replay */
};

/* Records a partial stop (default) or fails (strict). */
static int stop_partial(struct rctx *x, int code, struct err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int stop_partial(struct rctx *x, int code, struct err *err, const char *fmt, ...)
{
    char msg[sizeof(x->res->reason)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    x->stopped = true;
    if (x->o->strict)
        return ERR(err, code, "%s (strict: restore failed)", msg);
    if (!x->res->partial) {
        x->res->partial = true;
        snprintf(x->res->reason, sizeof(x->res->reason), "%s", msg);
    }
    LOG_WARN("restore: partial db=%s reason=\"%s\"", x->o->db_name, msg);
    return 0;
}

/* Appends the batches of chain[gi] to the plan. */
static int plan_gen(struct rctx *x, struct chain_gen *cg, size_t gi, struct plan_entry **plan,
                    size_t *n_plan, size_t *cap_plan, struct err *err)
{
    struct cand *cands = NULL;
    size_t n = 0;
    uint32_t expected = 1;
    int rc = 0;
    char g[GEN_ID_STR_LEN + 1];

    gen_id_format(&cg->id, g);
    cands = calloc(cg->objs.n ? cg->objs.n : 1, sizeof(*cands));
    if (!cands)
        return ERR(err, ENOMEM, "restore: out of memory");
    for (size_t i = 0; i < cg->objs.n; i++) {
        if (layout_batch_parse(cg->objs.v[i].key, &cands[n].b) == 0) {
            if (!cands[n].b.has_ts)
                cands[n].b.ts = 0;
            cands[n].obj = &cg->objs.v[i];
            n++;
        }
    }
    if (n == 0)
        goto out;
    if (!cg->has_meta) {
        rc = stop_partial(x, EBADMSG, err,
                          "%s-%s/.meta: missing but the generation has %zu batch(es); WAL of "
                          "this generation not replayed",
                          x->o->db_name, g, n);
        goto out;
    }
    qsort(cands, n, sizeof(*cands), cmp_cand);
    for (size_t i = 0; i < n;) {
        if (cands[i].b.first < expected) {
            i++;
            continue;
        }
        const struct cand *e = &cands[i];
        if (e->b.first > expected) {
            rc = stop_partial(x, ENOENT, err,
                              "%s-%s/: missing batch: frames %u-%u absent (next object %s)",
                              x->o->db_name, g, expected, e->b.first - 1, e->obj->key);
            goto out;
        }
        if (x->o->has_time && e->b.has_ts && (int64_t)e->b.ts > x->o->time_s) {
            x->stopped = true; /* point in time reached: not partial */
            goto out;
        }
        uint32_t apply_last = e->b.last;
        for (size_t j = i + 1; j < n && cands[j].b.first <= e->b.last; j++) {
            const struct cand *s = &cands[j];
            if (s->b.first > e->b.first && s->b.ts > e->b.ts &&
                (!x->o->has_time || (int64_t)s->b.ts <= x->o->time_s) &&
                s->b.first - 1 < apply_last)
                apply_last = s->b.first - 1;
        }
        if (*n_plan == *cap_plan) {
            size_t cap = *cap_plan ? *cap_plan * 2 : 64;
            struct plan_entry *v = realloc(*plan, cap * sizeof(*v));
            if (!v) {
                rc = ERR(err, ENOMEM, "restore: out of memory");
                goto out;
            }
            *plan = v;
            *cap_plan = cap;
        }
        (*plan)[(*n_plan)++] = (struct plan_entry){
            .gen = gi, .key = e->obj->key, .size = e->obj->size, .b = e->b,
            .apply_last = apply_last};
        expected = apply_last + 1;
        i++;
    }
out:
    free(cands);
    return rc;
}

/* ---------------------------------------------------------------- chain */

static void chain_free(struct chain_gen *ch, size_t n)
{
    for (size_t i = 0; i < n; i++)
        layout_objects_free(&ch[i].objs);
    free(ch);
}

/* Walks .dep from gen. With fd >= 0, downloads snapshots into fd as it goes (falling back to
 * the parent on a corrupt one). chain[0] = gen ... chain[n-1] = base. */
static int walk_chain(struct rctx *x, const char *db, const struct gen_id *gen, int fd,
                      const char *scratch_dir, struct chain_gen **chain_out, size_t *n_out,
                      bool *has_snapshot, struct err *err)
{
    struct chain_gen *ch = NULL;
    size_t n = 0;
    struct gen_id cur = *gen;
    int rc = 0;
    char g[GEN_ID_STR_LEN + 1], pg[GEN_ID_STR_LEN + 1];

    *has_snapshot = false;
    ch = calloc(LAYOUT_MAX_DEP_DEPTH + 2, sizeof(*ch));
    if (!ch)
        return ERR(err, ENOMEM, "restore: out of memory");
    for (;;) {
        gen_id_format(&cur, g);
        for (size_t i = 0; i < n; i++)
            if (gen_id_eq(&ch[i].id, &cur)) {
                rc = ERR(err, EBADMSG, "database %s: .dep chain has a cycle at generation %s",
                         db, g);
                goto out;
            }
        if (n > LAYOUT_MAX_DEP_DEPTH) {
            rc = ERR(err, EBADMSG,
                     "database %s: .dep chain from %s is longer than %d generations without a "
                     "snapshot",
                     db, g, LAYOUT_MAX_DEP_DEPTH);
            goto out;
        }
        struct chain_gen *cg = &ch[n++];
        cg->id = cur;
        rc = layout_list_gen_objects(x->c, db, &cur, &cg->objs, err);
        if (rc)
            goto out;
        if (cg->objs.n == 0) {
            gen_id_format(&ch[n > 1 ? n - 2 : 0].id, pg);
            rc = n == 1 ? ERR(err, ENOENT, "generation %s of database %s has no objects", g, db)
                        : ERR(err, ENOENT,
                              "database %s: parent generation %s (named by %s-%s/.dep) not "
                              "found",
                              db, g, db, pg);
            goto out;
        }
        enum compression comp;
        const struct s3_object_info *snap = find_snapshot(&cg->objs, &comp);
        if (snap && fd < 0) {
            *has_snapshot = true;
            break;
        }
        if (snap) {
            struct err e = {0};
            uint64_t obj_size = 0, db_size = 0;
            rc = fetch_snapshot(x->c, snap->key, comp, fd, scratch_dir, &obj_size, &db_size, &e);
            x->res->bytes_downloaded += obj_size;
            if (!rc) {
                *has_snapshot = true;
                x->res->has_snapshot = true;
                x->res->snapshot_gen = cur;
                snprintf(x->res->snapshot_key, sizeof(x->res->snapshot_key), "%s", snap->key);
                break;
            }
            if (rc != EBADMSG) {
                ERR(err, rc, "%s: %s", snap->key, e.msg);
                goto out;
            }
            if (x->o->strict) {
                rc = ERR(err, EBADMSG, "%s: %s (strict: restore failed)", snap->key, e.msg);
                goto out;
            }
            LOG_WARN("restore: corrupt snapshot key=%s reason=\"%s\", trying .dep parent",
                     snap->key, e.msg);
            rc = 0;
            if (ftruncate(fd, 0) != 0) {
                rc = ERR(err, errno, "truncate temp file: %s", errno_name(errno));
                goto out;
            }
        }
        struct gen_id parent;
        struct err e = {0};
        rc = layout_read_dep(x->c, db, &cur, &parent, &e);
        if (rc == ENOENT) {
            rc = 0;
            if (snap) { /* corrupt snapshot and nothing to fall back to */
                rc = ERR(err, EBADMSG, "%s: corrupt and generation %s has no .dep parent",
                         snap->key, g);
                goto out;
            }
            break; /* no snapshot, no parent: replay from an empty file */
        }
        if (rc) {
            ERR(err, rc, "%s", e.msg);
            goto out;
        }
        cur = parent;
    }
out:
    if (rc) {
        chain_free(ch, n);
        return rc;
    }
    *chain_out = ch;
    *n_out = n;
    return 0;
}

int restore_chain(struct s3_client *c, const char *db, const struct gen_id *gen,
                  struct gen_id **chain_out, size_t *n_out, bool *has_snapshot_out,
                  struct err *err)
{
    struct restore_opts o;
    struct restore_result res;
    struct rctx x = {.c = c, .o = &o, .res = &res};
    struct chain_gen *ch = NULL;
    size_t n = 0;
    int rc;

    restore_opts_init(&o);
    o.db_name = db;
    memset(&res, 0, sizeof(res));
    rc = walk_chain(&x, db, gen, -1, NULL, &ch, &n, has_snapshot_out, err);
    if (rc)
        return rc;
    *chain_out = calloc(n, sizeof(**chain_out));
    if (!*chain_out) {
        chain_free(ch, n);
        return ERR(err, ENOMEM, "restore: out of memory");
    }
    for (size_t i = 0; i < n; i++)
        (*chain_out)[i] = ch[i].id;
    *n_out = n;
    chain_free(ch, n);
    return 0;
}

/* ---------------------------------------------------------------- replay driver */

struct feed_ctx {
    struct replay *r;
    struct err *err;
};

static int feed_sink(void *arg, const uint8_t *p, size_t len)
{
    struct feed_ctx *f = arg;
    return replay_feed(f->r, p, len, f->err);
}

static void progress(struct rctx *x, uint64_t total)
{
    if (x->o->progress)
        x->o->progress(x->o->progress_arg, x->res->bytes_downloaded, total);
}

static int replay_plan(struct rctx *x, struct chain_gen *ch, size_t n_ch, struct plan_entry *plan,
                       size_t n_plan, int fd, const char *scratch_dir, uint64_t total,
                       struct err *err)
{
    struct dl_pool pool;
    struct replay *r = NULL;
    const char **keys = calloc(n_plan ? n_plan : 1, sizeof(*keys));
    size_t cur_gen = SIZE_MAX;
    int rc = 0;
    int threads = x->o->parallel > 0 ? x->o->parallel : RESTORE_DEFAULT_PARALLEL;
    bool pool_started = false;

    if (!keys)
        return ERR(err, ENOMEM, "restore: out of memory");
    for (size_t i = 0; i < n_plan; i++)
        keys[i] = plan[i].key;
    r = replay_new(fd, scratch_dir, err);
    if (!r) {
        rc = err ? err->code : ENOMEM;
        goto out;
    }
    if (x->base_empty)
        replay_track_pages(r);
    rc = dl_start(&pool, x->c, scratch_dir, keys, n_plan, threads, err);
    pool_started = true;
    if (rc)
        goto out;
    /* generations in the chain that have a .meta but no batches still count */
    for (size_t i = 0; i < n_plan; i++) {
        struct plan_entry *pe = &plan[i];
        struct chain_gen *cg = &ch[pe->gen];
        struct replay_stats before, after;
        struct err e = {0};

        if (pe->gen != cur_gen) {
            if (cur_gen != SIZE_MAX)
                replay_gen_end(r);
            cur_gen = pe->gen;
            rc = replay_gen_begin(r, &cg->meta, !x->o->no_verify_crc, &e);
            if (rc) {
                char g[GEN_ID_STR_LEN + 1];
                gen_id_format(&cg->id, g);
                rc = stop_partial(x, rc, err, "%s-%s/.meta: %s", x->o->db_name, g, e.msg);
                break;
            }
        }
        struct dl_job *j = dl_wait(&pool, i);
        x->res->bytes_downloaded += j->size;
        if (j->rc == ENOENT) {
            rc = stop_partial(x, ENOENT, err, "%s: missing (deleted after listing)", pe->key);
            break;
        }
        if (j->rc) {
            rc = ERR(err, j->rc, "%s", j->err.msg);
            break;
        }
        replay_get_stats(r, &before);
        struct feed_ctx f = {.r = r, .err = &e};
        rc = replay_batch_begin(r, pe->b.first, pe->b.last, pe->apply_last, &e);
        if (!rc)
            rc = decompress_fd(pe->b.comp, j->fd, feed_sink, &f, &e);
        if (!rc)
            rc = replay_batch_end(r, &e);
        dl_consumed(&pool, i);
        if (rc) {
            if (rc == EBADMSG)
                rc = stop_partial(x, rc, err, "%s: %s", pe->key, e.msg);
            else
                ERR(err, rc, "%s: %s", pe->key, e.msg);
            break;
        }
        replay_get_stats(r, &after);
        if (after.txns_applied != before.txns_applied) {
            x->res->last_batch_ts = pe->b.ts;
            x->res->last_frame = after.last_commit_frame;
            x->res->last_frame_gen = cg->id;
        }
        progress(x, total);
    }
    if (r) {
        struct replay_stats st;
        replay_get_stats(r, &st);
        x->res->frames_applied = st.frames_applied;
        x->res->txns_applied = st.txns_applied;
        if (st.page_size)
            x->res->page_size = st.page_size;
        x->missing_page = replay_first_missing_page(r);
        x->final_pages = st.db_pages;
    }
out:
    (void)n_ch;
    if (pool_started)
        dl_stop(&pool);
    replay_free(r);
    free(keys);
    return rc;
}

/* ---------------------------------------------------------------- finish */

static int integrity_check(const char *path, bool *ok, char *msg, size_t cap, struct err *err)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    size_t used = 0;

    *ok = false;
    msg[0] = '\0';
    if (rc != SQLITE_OK) {
        int r = ERR(err, EIO, "integrity_check: open %s: %s", path,
                    db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return r;
    }
    rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check(20)", -1, &st, NULL);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
            break;
        const char *row = (const char *)sqlite3_column_text(st, 0);
        if (row && !strcmp(row, "ok")) {
            *ok = true;
            continue;
        }
        if (used < cap) {
            int w = snprintf(msg + used, cap - used, "%s%s", used ? "; " : "", row ? row : "");
            used += w > 0 ? (size_t)w : 0;
        }
    }
    if (rc != SQLITE_DONE) {
        snprintf(msg, cap, "%s", sqlite3_errmsg(db));
        *ok = false;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return 0;
}

int restore_run(struct s3_client *c, const struct restore_opts *o, struct restore_result *result,
                struct err *err)
{
    struct restore_result local;
    struct restore_result *res = result ? result : &local;
    struct rctx x = {.c = c, .o = o, .res = res};
    char dir[4096], tmp[4200], scratch[4096], g[GEN_ID_STR_LEN + 1];
    struct chain_gen *ch = NULL;
    size_t n_ch = 0;
    struct plan_entry *plan = NULL;
    size_t n_plan = 0, cap_plan = 0;
    bool has_snapshot = false, tmp_made = false;
    int fd = -1, rc = 0;
    int64_t tomb = 0;
    uint64_t total = 0;

    memset(res, 0, sizeof(*res));
    if (!o || !o->db_name || !o->target || !*o->target)
        return ERR(err, EINVAL, "restore: db_name and target are required");
    if (!layout_db_name_valid(o->db_name))
        return ERR(err, EINVAL, "restore: bad db_name '%s'", o->db_name);
    dir_of(o->target, dir, sizeof(dir));
    snprintf(scratch, sizeof(scratch), "%s", o->scratch_dir ? o->scratch_dir : dir);

    rc = restore_choose_generation(c, o->db_name, o->gen, o->has_time, o->time_s, &res->gen, err);
    if (rc)
        return rc;
    gen_id_format(&res->gen, g);
    {
        struct err e = {0};
        rc = layout_read_tombstone(c, o->db_name, &tomb, &e);
        if (rc == 0 && layout_is_tombstoned(tomb, &res->gen) && !o->ignore_tombstone) {
            char t[32];
            layout_format_utc(tomb, t, sizeof(t));
            return ERR(err, ENOENT,
                       "database %s has been tombstoned at %s: generation %s is deleted",
                       o->db_name, t, g);
        }
        if (rc && rc != ENOENT)
            return ERR(err, rc, "%s", e.msg);
        rc = 0;
    }

    if (snprintf(tmp, sizeof(tmp), "%s/.%s.restore-XXXXXX", dir, base_of(o->target)) >=
        (int)sizeof(tmp))
        return ERR(err, ENAMETOOLONG, "restore: target path too long");
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return ERR(err, errno, "restore: create temp file in %s: %s", dir, errno_name(errno));
    tmp_made = true;
    fchmod(fd, 0644);

    rc = walk_chain(&x, o->db_name, &res->gen, fd, scratch, &ch, &n_ch, &has_snapshot, err);
    if (rc)
        goto out;
    res->n_generations = (unsigned)n_ch;
    if (has_snapshot) {
        uint8_t h[2];
        size_t got = 0;
        if (!fileio_pread_full(fd, h, 2, 16, &got) && got == 2) {
            uint32_t ps = (uint32_t)h[0] << 8 | h[1];
            res->page_size = ps == 1 ? 65536 : ps;
        }
    }

    /* plan: oldest generation first */
    for (size_t k = n_ch; k-- > 0 && !x.stopped;) {
        struct chain_gen *cg = &ch[k];
        struct err e = {0};
        int mrc = layout_read_meta(c, o->db_name, &cg->id, &cg->meta, &e);
        if (mrc == 0) {
            cg->has_meta = true;
        } else if (mrc == EBADMSG) {
            /* a short or long .meta: its batches cannot be verified */
            bool has_batches = false;
            struct batch_name b;
            for (size_t i = 0; i < cg->objs.n && !has_batches; i++)
                has_batches = layout_batch_parse(cg->objs.v[i].key, &b) == 0;
            if (has_batches) {
                rc = stop_partial(&x, EBADMSG, err, "%s", e.msg);
                if (rc)
                    goto out;
                break;
            }
            continue;
        } else if (mrc != ENOENT) {
            rc = ERR(err, mrc, "%s", e.msg);
            goto out;
        }
        rc = plan_gen(&x, cg, k, &plan, &n_plan, &cap_plan, err);
        if (rc)
            goto out;
    }
    total = res->bytes_downloaded;
    for (size_t i = 0; i < n_plan; i++)
        total += plan[i].size;
    progress(&x, total);

    x.base_empty = !has_snapshot;
    rc = replay_plan(&x, ch, n_ch, plan, n_plan, fd, scratch, total, err);
    if (rc)
        goto out;
    if (x.missing_page != 0) {
        /* The replicator abandons a generation's first snapshot when a newer generation needs
         * one before it finished (it logs that); such a generation restores from nothing. */
        char bg[GEN_ID_STR_LEN + 1];
        gen_id_format(&ch[n_ch - 1].id, bg);
        rc = ERR(err, ENODATA,
                 "database %s: generation %s has no base: it has no snapshot and no .dep "
                 "parent, and its WAL never writes page %u of the %u-page database, so "
                 "generation %s cannot be restored; target left unchanged",
                 o->db_name, bg, x.missing_page, x.final_pages, g);
        goto out;
    }

    struct stat sb;
    if (fstat(fd, &sb) == 0)
        res->db_size = (uint64_t)sb.st_size;
    if (fsync(fd) != 0) {
        rc = ERR(err, errno, "restore: fsync %s: %s", tmp, errno_name(errno));
        goto out;
    }
    close(fd);
    fd = -1;

    res->integrity_ok = true;
    if (!o->skip_integrity && res->db_size > 0) {
        char msg[400];
        bool ok = false;
        rc = integrity_check(tmp, &ok, msg, sizeof(msg), err);
        if (rc)
            goto out;
        res->integrity_ok = ok;
        if (!ok) {
            rc = ERR(err, EBADMSG,
                     "restored database of %s generation %s fails PRAGMA integrity_check: %s; "
                     "target left unchanged",
                     o->db_name, g, msg);
            goto out;
        }
    }
    if (rename(tmp, o->target) != 0) {
        rc = ERR(err, errno, "restore: rename %s -> %s: %s", tmp, o->target, errno_name(errno));
        goto out;
    }
    tmp_made = false;
    rc = fileio_fsync_dir(dir, err);
    if (rc)
        goto out;
    for (int i = 0; i < 2; i++) {
        char side[4200];
        snprintf(side, sizeof(side), "%s%s", o->target, i ? "-shm" : "-wal");
        if (unlink(side) != 0 && errno != ENOENT) {
            rc = ERR(err, errno, "restore: remove stale %s: %s", side, errno_name(errno));
            goto out;
        }
    }
    progress(&x, total);
    LOG_INFO("restore: done db=%s gen=%s frames=%llu txns=%llu size=%llu partial=%d", o->db_name,
             g, (unsigned long long)res->frames_applied, (unsigned long long)res->txns_applied,
             (unsigned long long)res->db_size, res->partial);
out:
    if (fd >= 0)
        close(fd);
    if (tmp_made) {
        unlink(tmp);
        /* integrity_check may have left side files if it failed hard */
        char side[4300];
        snprintf(side, sizeof(side), "%s-wal", tmp);
        unlink(side);
        snprintf(side, sizeof(side), "%s-shm", tmp);
        unlink(side);
    }
    chain_free(ch, n_ch);
    free(plan);
    return rc;
}

/* ---------------------------------------------------------------- ls -v, snapshot, size */

int restore_gen_info(struct s3_client *c, const char *db, const struct gen_id *gen,
                     struct gen_info *out, struct err *err)
{
    struct layout_objects objs = {0};
    struct err e = {0};
    int rc;

    memset(out, 0, sizeof(*out));
    out->gen = *gen;
    out->created_s = gen_id_created_s(gen);
    rc = layout_list_gen_objects(c, db, gen, &objs, err);
    if (rc)
        return rc;
    out->n_objects = objs.n;
    if (objs.n == 0) {
        char g[GEN_ID_STR_LEN + 1];
        gen_id_format(gen, g);
        layout_objects_free(&objs);
        return ERR(err, ENOENT, "generation %s not found for %s", g, db);
    }
    for (size_t i = 0; i < objs.n; i++) {
        struct batch_name b;
        if (layout_batch_parse(objs.v[i].key, &b) == 0) {
            out->n_batches++;
            out->batch_bytes += objs.v[i].size;
            out->last_consistent_frame = b.last; /* key order: the last one wins (§4.8) */
        }
    }
    enum compression comp;
    const struct s3_object_info *snap = find_snapshot(&objs, &comp);
    if (snap) {
        out->has_snapshot = true;
        snprintf(out->snapshot_key, sizeof(out->snapshot_key), "%s", snap->key);
        out->snapshot_size = snap->size;
        out->snapshot_mtime = snap->last_modified;
    }
    layout_objects_free(&objs);
    rc = layout_read_changecounter(c, db, gen, &out->changecounter, &e);
    if (rc == 0)
        out->has_changecounter = true;
    else if (rc != ENOENT && rc != EBADMSG)
        return ERR(err, rc, "%s", e.msg);
    err_clear(&e);
    rc = layout_read_meta(c, db, gen, &out->meta, &e);
    if (rc == 0)
        out->has_meta = true;
    else if (rc != ENOENT && rc != EBADMSG)
        return ERR(err, rc, "%s", e.msg);
    err_clear(&e);
    rc = layout_read_dep(c, db, gen, &out->dep, &e);
    if (rc == 0)
        out->has_dep = true;
    else if (rc != ENOENT && rc != EBADMSG)
        return ERR(err, rc, "%s", e.msg);
    return 0;
}

int restore_upload_snapshot(struct s3_client *c, const char *db, const struct gen_id *gen,
                            const char *path, enum compression comp, struct err *err)
{
    char key[LAYOUT_KEY_MAX], dir[4096];
    uint8_t hdr[28], cc[LAYOUT_CHANGECOUNTER_BYTES];
    int fd = -1, zfd = -1, rc;
    uint64_t zlen = 0;
    size_t got = 0;

    rc = layout_key_snapshot(db, gen, comp, key);
    if (rc)
        return ERR(err, rc, "snapshot: bad db_name '%s'", db);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ERR(err, errno, "snapshot: open %s: %s", path, errno_name(errno));
    dir_of(path, dir, sizeof(dir));
    rc = compress_fd_to_tmpfile(comp, 0, fd, dir, &zfd, &zlen, err);
    if (rc)
        goto out;
    rc = s3_put_object_fd(c, key, zfd, zlen, err);
    if (rc)
        goto out;
    memset(hdr, 0, sizeof(hdr));
    fileio_pread_full(fd, hdr, sizeof(hdr), 0, &got);
    memcpy(cc, got >= 28 ? hdr + 24 : (const uint8_t *)"\0\0\0\0", 4);
    rc = layout_key_changecounter(db, gen, key);
    if (!rc)
        rc = s3_put_object(c, key, cc, sizeof(cc), err);
out:
    if (zfd >= 0)
        close(zfd);
    close(fd);
    return rc;
}

/* Size from the last commit frame of one batch object (decompressed in memory: a batch is at
 * most batch_max_frames frames). 0 and *size_out when a commit frame was found, ENOENT if none. */
static int expected_size_from_batch(struct s3_client *c, const char *key,
                                    const struct batch_name *bn, uint32_t page_size,
                                    uint64_t *size_out, struct err *err)
{
    struct buf raw, plain;
    uint64_t frame = wal_frame_size(page_size);
    uint32_t db_pages = 0;
    int rc;

    buf_init(&raw, EXPECTED_SIZE_BATCH_MAX);
    buf_init(&plain, EXPECTED_SIZE_BATCH_MAX);
    rc = s3_get_object(c, key, &raw, err);
    if (rc == 0)
        rc = decompress_buf(bn->comp, raw.data, raw.len, &plain, err);
    for (size_t off = 0; rc == 0 && off + frame <= plain.len; off += frame) {
        uint32_t pages = be32_load(plain.data + off + 4);
        if (pages != 0)
            db_pages = pages;
    }
    buf_free(&raw);
    buf_free(&plain);
    if (rc != 0)
        return rc;
    if (db_pages == 0)
        return ENOENT;
    *size_out = (uint64_t)db_pages * page_size;
    return 0;
}

/* Size from the SQLite header of a snapshot: only its first bytes are fetched and decompressed
 * (page size at 16, in-header database size in pages at 28). */
static int expected_size_from_snapshot(struct s3_client *c, const char *key, enum compression comp,
                                       uint64_t *size_out, struct err *err)
{
    struct buf raw, plain;
    int rc;

    buf_init(&raw, 1 << 20);
    buf_init(&plain, 1 << 22);
    rc = s3_get_object_range(c, key, 0, comp == COMP_RAW ? 100 : 256 * 1024, &raw, err);
    if (rc == 0 && comp != COMP_RAW) {
        struct err derr = {0};
        /* A prefix of a compressed stream: the decoder reports it as truncated, but whatever
         * it produced before that is valid. */
        (void)decompress_buf(comp, raw.data, raw.len, &plain, &derr);
    } else if (rc == 0) {
        rc = buf_append(&plain, raw.data, raw.len);
    }
    if (rc == 0 && plain.len < 100)
        rc = ERR(err, EBADMSG, "%s: too short for a SQLite header", key);
    if (rc == 0 && memcmp(plain.data, "SQLite format 3", 16) != 0)
        rc = ERR(err, EBADMSG, "%s: not a SQLite database", key);
    if (rc == 0) {
        uint32_t page_size = (uint32_t)plain.data[16] << 8 | plain.data[17];
        if (page_size == 1)
            page_size = 65536;
        *size_out = (uint64_t)be32_load(plain.data + 28) * page_size;
    }
    buf_free(&raw);
    buf_free(&plain);
    return rc;
}

int restore_expected_size(struct s3_client *c, const char *db, uint64_t *size_out,
                          struct err *err)
{
    /* Cheap on purpose (the mount asks this for every database it lists): the newest batch of
     * the newest generation says the size after its last commit; without batches, the header
     * of the generation's snapshot does; without one, the parent generation is asked. */
    struct gen_id gen;
    int rc = restore_choose_generation(c, db, NULL, false, 0, &gen, err);

    for (int depth = 0; rc == 0 && depth <= LAYOUT_MAX_DEP_DEPTH; depth++) {
        struct layout_objects objs = {0};
        struct gen_meta meta;
        const struct s3_object_info *best = NULL, *snap = NULL;
        struct batch_name best_bn = {0};
        enum compression snap_comp = COMP_RAW;
        struct err merr = {0};

        rc = layout_list_gen_objects(c, db, &gen, &objs, err);
        if (rc != 0)
            return rc;
        for (size_t i = 0; i < objs.n; i++) {
            const char *name = strrchr(objs.v[i].key, '/');
            struct batch_name bn;
            enum compression sc;

            name = name ? name + 1 : objs.v[i].key;
            if (layout_batch_parse(name, &bn) == 0) {
                if (best == NULL || bn.last > best_bn.last ||
                    (bn.last == best_bn.last && bn.ts > best_bn.ts)) {
                    best = &objs.v[i];
                    best_bn = bn;
                }
            } else if (layout_snapshot_parse(name, &sc) == 0 && snap == NULL) {
                snap = &objs.v[i];
                snap_comp = sc;
            }
        }
        if (best != NULL && best->size <= EXPECTED_SIZE_BATCH_MAX &&
            layout_read_meta(c, db, &gen, &meta, &merr) == 0 &&
            wal_page_size_valid(meta.page_size) &&
            expected_size_from_batch(c, best->key, &best_bn, meta.page_size, size_out, &merr) == 0) {
            layout_objects_free(&objs);
            return 0;
        }
        if (snap != NULL) {
            rc = expected_size_from_snapshot(c, snap->key, snap_comp, size_out, err);
            layout_objects_free(&objs);
            return rc;
        }
        layout_objects_free(&objs);
        struct gen_id parent;
        rc = layout_read_dep(c, db, &gen, &parent, err);
        if (rc == ENOENT) {
            *size_out = 0; /* no snapshot anywhere: replay starts from an empty file */
            return ERR(err, ENOENT, "%s: size unknown (no snapshot, no readable batch)", db);
        }
        gen = parent;
    }
    return rc ? rc : ERR(err, EBADMSG, "%s: .dep chain longer than %d", db, LAYOUT_MAX_DEP_DEPTH);
}
