/* fs/lazy.c - lazy restore (see fs/lazy.h): the cached bucket listing behind the mount's
 * virtual entries, and single-flight restores of those entries into BACKING_DIR.
 * Lock order: refresh_mu before mu. mu guards entries, n_entries, listed_mono_ms, hidden,
 * jobs and the stats; it is never held across S3 calls, restores, or the emit callback. */
#include "fs/lazy.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fileio.h"
#include "common/log.h"
#include "wal/restore.h"

#define LAZY_PATH_MAX 4096

struct lazy_entry {
    char *path;    /* relative path in the mount */
    char *db_name; /* bucket name */
    struct gen_id gen;
    uint64_t size;
    bool size_known;
    int64_t created_s;
};

/* A database deleted through the mount: hidden until a newer generation shows up. */
struct lazy_hidden {
    char *path;
    int64_t deleted_s;
    struct lazy_hidden *next;
};

/* One restore in flight; freed by whoever drops n_refs to 0. */
struct lazy_job {
    char *path;
    bool done;
    int rc;
    struct lazy_restored res;
    unsigned n_refs;
    struct lazy_job *next;
};

struct lazy {
    struct lazy_conf conf;
    pthread_mutex_t refresh_mu; /* serialises refreshes (held across listing I/O) */
    pthread_mutex_t mu;
    pthread_cond_t job_cv;      /* signalled when a job is done */
    struct lazy_entry *entries; /* guarded by mu */
    size_t n_entries;           /* guarded by mu */
    bool listed;                /* guarded by mu: at least one listing succeeded */
    int64_t listed_mono_ms;     /* guarded by mu */
    struct lazy_hidden *hidden; /* guarded by mu */
    struct lazy_job *jobs;      /* guarded by mu */
    struct lazy_stats stats;    /* guarded by mu */
};

static int64_t real_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void entries_free(struct lazy_entry *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].path);
        free(v[i].db_name);
    }
    free(v);
}

struct lazy *lazy_new(const struct lazy_conf *conf, struct err *err)
{
    struct lazy *lz = calloc(1, sizeof(*lz));

    if (lz == NULL) {
        ERR(err, ENOMEM, "lazy: out of memory");
        return NULL;
    }
    lz->conf = *conf;
    pthread_mutex_init(&lz->refresh_mu, NULL);
    pthread_mutex_init(&lz->mu, NULL);
    pthread_cond_init(&lz->job_cv, NULL);
    return lz;
}

void lazy_free(struct lazy *lz)
{
    if (lz == NULL)
        return;
    entries_free(lz->entries, lz->n_entries);
    while (lz->hidden != NULL) {
        struct lazy_hidden *h = lz->hidden;

        lz->hidden = h->next;
        free(h->path);
        free(h);
    }
    /* Jobs are owned by the threads running lazy_restore; none may run any more. */
    pthread_cond_destroy(&lz->job_cv);
    pthread_mutex_destroy(&lz->mu);
    pthread_mutex_destroy(&lz->refresh_mu);
    free(lz);
}

/* First path component equals the hidden staging name. */
static bool path_is_hidden_root(const struct lazy *lz, const char *path)
{
    const char *h = lz->conf.hidden_name;
    size_t n;

    if (h == NULL || h[0] == '\0')
        return false;
    n = strlen(h);
    return strncmp(path, h, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static bool exists_locally(const struct lazy *lz, const char *path)
{
    struct stat st;

    return fstatat(lz->conf.backing_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* mu held. Deleted through the mount at or after the generation's creation? */
static bool hidden_locked(struct lazy *lz, const char *path, int64_t created_s)
{
    for (struct lazy_hidden *h = lz->hidden; h != NULL; h = h->next)
        if (strcmp(h->path, path) == 0)
            return created_s <= h->deleted_s;
    return false;
}

/* mu held: the previous listing's size for (db, gen), to avoid downloading batches again. */
static bool cached_size_locked(struct lazy *lz, const char *db, const struct gen_id *gen,
                               uint64_t *size_out)
{
    for (size_t i = 0; i < lz->n_entries; i++) {
        const struct lazy_entry *e = &lz->entries[i];

        if (e->size_known && strcmp(e->db_name, db) == 0 && gen_id_eq(&e->gen, gen)) {
            *size_out = e->size;
            return true;
        }
    }
    return false;
}

/* Builds one entry for db (0 and *added true when it is a virtual database). tombstoned: the
 * listing holds db's tombstone (read only then). */
static int build_entry(struct lazy *lz, const char *db, bool tombstoned, struct lazy_entry *out,
                       bool *added, struct err *err)
{
    char path[LAZY_PATH_MAX];
    struct err e2 = {0};
    struct gen_id gen;
    uint64_t size = 0;
    bool have_size;
    int rc;

    *added = false;
    rc = layout_path_from_db_name(db, path, sizeof path, &e2);
    if (rc != 0) {
        LOG_DEBUG("lazy: skip db=%s (not a path: %s)", db, e2.msg);
        return 0;
    }
    if (path_is_hidden_root(lz, path) || exists_locally(lz, path))
        return 0;
    rc = restore_choose_generation(lz->conf.s3, db, NULL, false, 0, &gen, err);
    if (rc == ENOENT) {
        err_clear(err);
        return 0; /* tombstoned or no generation */
    }
    if (rc != 0)
        return rc;
    if (tombstoned) {
        int64_t tomb_s = 0;
        struct err te = {0};

        rc = layout_read_tombstone(lz->conf.s3, db, &tomb_s, &te);
        if (rc == 0 && layout_is_tombstoned(tomb_s, &gen))
            return 0; /* deleted (bottomless tombstone) */
        if (rc != 0 && rc != ENOENT)
            return ERR(err, rc, "%s", te.msg);
        rc = 0;
    }
    pthread_mutex_lock(&lz->mu);
    if (hidden_locked(lz, path, gen_id_created_s(&gen))) {
        pthread_mutex_unlock(&lz->mu);
        return 0;
    }
    have_size = cached_size_locked(lz, db, &gen, &size);
    pthread_mutex_unlock(&lz->mu);
    if (!have_size) {
        struct err se = {0};
        int src = restore_expected_size(lz->conf.s3, db, &size, &se);

        have_size = src == 0;
        if (src != 0)
            LOG_DEBUG("lazy: size unknown db=%s: %s", db, se.msg);
    }
    out->path = strdup(path);
    out->db_name = strdup(db);
    if (out->path == NULL || out->db_name == NULL) {
        free(out->path);
        free(out->db_name);
        return ERR(err, ENOMEM, "lazy: out of memory");
    }
    out->gen = gen;
    out->size = have_size ? size : 0;
    out->size_known = have_size;
    out->created_s = gen_id_created_s(&gen);
    *added = true;
    return 0;
}

/* mkdir -p of the directory part of path below the backing directory. */
static void make_parents(struct lazy *lz, const char *path)
{
    char dir[LAZY_PATH_MAX + 512];
    struct err err = {0};
    const char *slash = strrchr(path, '/');
    int n;

    if (slash == NULL)
        return;
    n = snprintf(dir, sizeof dir, "%s/%.*s", lz->conf.backing_dir, (int)(slash - path), path);
    if (n < 0 || (size_t)n >= sizeof dir)
        return;
    if (fileio_mkdir_p(dir, 0755, &err) != 0)
        LOG_WARN("lazy: cannot create the directory of path=%s: %s", path, err.msg);
}

/* refresh_mu held. Lists the bucket and swaps the cache. */
static int relist(struct lazy *lz, struct err *err)
{
    char **names = NULL;
    bool *tombstoned = NULL;
    size_t n_names = 0;
    struct lazy_entry *v = NULL;
    size_t n = 0;
    int rc;

    rc = layout_list_databases(lz->conf.s3, &names, &tombstoned, &n_names, err);
    if (rc != 0)
        goto out;
    v = calloc(n_names ? n_names : 1, sizeof(*v));
    if (v == NULL) {
        rc = ERR(err, ENOMEM, "lazy: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n_names; i++) {
        bool added = false;

        rc = build_entry(lz, names[i], tombstoned[i], &v[n], &added, err);
        if (rc != 0)
            goto out;
        if (added)
            n++;
    }
    /* Directories on the way to bucket-only databases are made real (empty) now, so the
     * mount can list and enter them like any directory; the databases stay virtual. */
    for (size_t i = 0; i < n; i++)
        make_parents(lz, v[i].path);
    pthread_mutex_lock(&lz->mu);
    entries_free(lz->entries, lz->n_entries);
    lz->entries = v;
    lz->n_entries = n;
    v = NULL;
    n = 0;
    lz->listed = true;
    lz->listed_mono_ms = clock_mono_ms();
    lz->stats.listed_ms = real_ms();
    lz->stats.n_refreshes++;
    lz->stats.last_error[0] = '\0';
    pthread_mutex_unlock(&lz->mu);
out:
    entries_free(v, n);
    layout_names_free(names, n_names);
    free(tombstoned);
    return rc;
}

int lazy_refresh(struct lazy *lz, bool force, struct err *err)
{
    int rc = 0;
    bool stale;

    pthread_mutex_lock(&lz->refresh_mu);
    pthread_mutex_lock(&lz->mu);
    stale = force || !lz->listed ||
            clock_mono_ms() - lz->listed_mono_ms >= (int64_t)lz->conf.ttl_ms;
    pthread_mutex_unlock(&lz->mu);
    if (stale) {
        rc = relist(lz, err);
        if (rc != 0) {
            pthread_mutex_lock(&lz->mu);
            lz->stats.n_refresh_failures++;
            snprintf(lz->stats.last_error, sizeof lz->stats.last_error, "%s",
                     err != NULL ? err->msg : errno_name(rc));
            pthread_mutex_unlock(&lz->mu);
        }
    }
    pthread_mutex_unlock(&lz->refresh_mu);
    return rc;
}

/* Is path a proper directory prefix of entry path p? ("" is everyone's.) */
static bool is_under(const char *p, const char *dir)
{
    size_t n = strlen(dir);

    if (n == 0)
        return true;
    return strncmp(p, dir, n) == 0 && p[n] == '/';
}

/* A stable, nonzero placeholder inode number for a virtual path (readdir skips d_ino 0). */
static ino_t virtual_ino(const char *path, size_t len)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)path[i]) * 1099511628211ull;
    return (ino_t)(h | (1ull << 62));
}

static void fill_dir_stat(struct stat *st, const char *path, size_t len, int64_t mtime_s)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = virtual_ino(path, len);
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    st->st_mtime = (time_t)mtime_s;
    st->st_ctime = (time_t)mtime_s;
    st->st_atime = (time_t)mtime_s;
}

static void fill_file_stat(struct stat *st, const struct lazy_entry *e)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = virtual_ino(e->path, strlen(e->path));
    st->st_mode = S_IFREG | 0644;
    st->st_nlink = 1;
    st->st_size = (off_t)e->size;
    st->st_blksize = 4096;
    st->st_blocks = (blkcnt_t)((e->size + 511) / 512);
    st->st_mtime = (time_t)e->created_s;
    st->st_ctime = (time_t)e->created_s;
    st->st_atime = (time_t)e->created_s;
}

int lazy_lookup(struct lazy *lz, const char *path, struct stat *st_out)
{
    int rc = ENOENT;

    if (path[0] == '\0')
        return ENOENT;
    pthread_mutex_lock(&lz->mu);
    for (size_t i = 0; i < lz->n_entries; i++) {
        const struct lazy_entry *e = &lz->entries[i];

        if (strcmp(e->path, path) == 0) {
            fill_file_stat(st_out, e);
            rc = 0;
            break;
        }
        if (is_under(e->path, path)) {
            fill_dir_stat(st_out, path, strlen(path), e->created_s);
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&lz->mu);
    return rc;
}

struct emit_item {
    char name[256];
    struct stat st;
};

int lazy_list(struct lazy *lz, const char *dir, fs_hook_emit_fn *emit, void *emit_arg)
{
    struct err err = {0};
    struct emit_item *items = NULL;
    size_t n_items = 0;
    int rc;

    rc = lazy_refresh(lz, false, &err);
    if (rc != 0)
        LOG_WARN("lazy: bucket listing failed, using the cached one: %s", err.msg);
    pthread_mutex_lock(&lz->mu);
    items = calloc(lz->n_entries ? lz->n_entries : 1, sizeof(*items));
    if (items == NULL) {
        pthread_mutex_unlock(&lz->mu);
        return ENOMEM;
    }
    for (size_t i = 0; i < lz->n_entries; i++) {
        const struct lazy_entry *e = &lz->entries[i];
        const char *rel;
        size_t len;
        bool is_dir;
        bool dup = false;

        if (!is_under(e->path, dir))
            continue;
        rel = e->path + (dir[0] ? strlen(dir) + 1 : 0);
        len = strcspn(rel, "/");
        is_dir = rel[len] == '/';
        if (len == 0 || len >= sizeof items[0].name)
            continue;
        for (size_t k = 0; k < n_items && !dup; k++)
            dup = strlen(items[k].name) == len && memcmp(items[k].name, rel, len) == 0;
        if (dup)
            continue;
        memcpy(items[n_items].name, rel, len);
        items[n_items].name[len] = '\0';
        if (is_dir)
            fill_dir_stat(&items[n_items].st, e->path, (size_t)(rel - e->path) + len, e->created_s);
        else
            fill_file_stat(&items[n_items].st, e);
        n_items++;
    }
    LOG_DEBUG("lazy: list dir=%s cached=%zu emitted=%zu", dir, lz->n_entries, n_items);
    pthread_mutex_unlock(&lz->mu);
    for (size_t k = 0; k < n_items; k++)
        emit(emit_arg, items[k].name, &items[k].st);
    free(items);
    return 0;
}

/* mu held: removes path's entry from the cache. */
static void drop_entry_locked(struct lazy *lz, const char *path)
{
    for (size_t i = 0; i < lz->n_entries; i++) {
        if (strcmp(lz->entries[i].path, path) == 0) {
            free(lz->entries[i].path);
            free(lz->entries[i].db_name);
            lz->entries[i] = lz->entries[lz->n_entries - 1];
            lz->n_entries--;
            return;
        }
    }
}

void lazy_forget(struct lazy *lz, const char *path)
{
    struct lazy_hidden *h = calloc(1, sizeof(*h));
    char *copy = strdup(path);

    pthread_mutex_lock(&lz->mu);
    drop_entry_locked(lz, path);
    for (struct lazy_hidden *o = lz->hidden; o != NULL; o = o->next) {
        if (strcmp(o->path, path) == 0) {
            o->deleted_s = real_ms() / 1000;
            free(copy);
            free(h);
            copy = NULL;
            h = NULL;
            break;
        }
    }
    if (h != NULL && copy != NULL) {
        h->path = copy;
        h->deleted_s = real_ms() / 1000;
        h->next = lz->hidden;
        lz->hidden = h;
    } else {
        free(h);
        free(copy);
    }
    pthread_mutex_unlock(&lz->mu);
}

/* Does the actual work of one restore (no lock held). */
static int restore_path(struct lazy *lz, const char *path, struct lazy_restored *res)
{
    char target[LAZY_PATH_MAX + 512];
    char db_name[sizeof res->db_name];
    struct restore_opts o;
    struct restore_result rr;
    struct err err = {0};
    bool found = false;
    bool is_dir = false;
    int rc;

    memset(res, 0, sizeof(*res));
    if (path_is_hidden_root(lz, path))
        return ENOENT;
    if (exists_locally(lz, path))
        return 0;
    pthread_mutex_lock(&lz->mu);
    for (size_t i = 0; i < lz->n_entries && !found; i++) {
        if (strcmp(lz->entries[i].path, path) == 0) {
            snprintf(db_name, sizeof db_name, "%s", lz->entries[i].db_name);
            found = true;
        } else if (is_under(lz->entries[i].path, path)) {
            is_dir = true;
        }
    }
    pthread_mutex_unlock(&lz->mu);
    snprintf(target, sizeof target, "%s/%s", lz->conf.backing_dir, path);
    if (!found && !is_dir)
        return ENOENT;
    if (!found) {
        rc = fileio_mkdir_p(target, 0755, &err);
        if (rc != 0)
            LOG_ERR("lazy: mkdir failed path=%s: %s", path, err.msg);
        return rc != 0 ? EIO : 0;
    }
    {
        char parent[sizeof target];
        char *slash;

        snprintf(parent, sizeof parent, "%s", target);
        slash = strrchr(parent, '/');
        if (slash != NULL && slash != parent) {
            *slash = '\0';
            rc = fileio_mkdir_p(parent, 0755, &err);
            if (rc != 0) {
                LOG_ERR("lazy: restore failed db=%s path=%s: %s", db_name, path, err.msg);
                return EIO;
            }
        }
    }
    restore_opts_init(&o);
    o.db_name = db_name;
    o.target = target;
    o.scratch_dir = lz->conf.scratch_dir;
    memset(&rr, 0, sizeof rr);
    LOG_INFO("lazy: restore start db=%s path=%s", db_name, path);
    rc = restore_run(lz->conf.s3, &o, &rr, &err);
    if (rc != 0) {
        LOG_ERR("lazy: restore failed db=%s path=%s err=%s: %s", db_name, path, errno_name(rc),
                err.msg);
        return EIO;
    }
    {
        char gs[GEN_ID_STR_LEN + 1];

        gen_id_format(&rr.gen, gs);
        if (rr.partial)
            LOG_WARN("lazy: partial restore db=%s gen=%s: %s", db_name, gs, rr.reason);
        LOG_INFO("lazy: restored db=%s gen=%s bytes=%llu txns=%llu", db_name, gs,
                 (unsigned long long)rr.db_size, (unsigned long long)rr.txns_applied);
    }
    res->restored = true;
    snprintf(res->db_name, sizeof res->db_name, "%s", db_name);
    res->gen = rr.gen;
    return 0;
}

int lazy_restore(struct lazy *lz, const char *path, struct lazy_restored *out)
{
    struct lazy_job *job = NULL;
    struct lazy_restored res;
    int rc;

    pthread_mutex_lock(&lz->mu);
    for (job = lz->jobs; job != NULL; job = job->next)
        if (strcmp(job->path, path) == 0)
            break;
    if (job != NULL) {
        /* Someone else restores this path: wait for the same result. */
        job->n_refs++;
        while (!job->done)
            pthread_cond_wait(&lz->job_cv, &lz->mu);
        rc = job->rc;
        if (out != NULL) {
            *out = job->res;
            out->restored = false; /* the first caller reports the restore */
        }
        if (--job->n_refs == 0) {
            free(job->path);
            free(job);
        }
        pthread_mutex_unlock(&lz->mu);
        return rc;
    }
    job = calloc(1, sizeof(*job));
    if (job != NULL)
        job->path = strdup(path);
    if (job == NULL || job->path == NULL) {
        pthread_mutex_unlock(&lz->mu);
        free(job);
        return ENOMEM;
    }
    job->n_refs = 1;
    job->next = lz->jobs;
    lz->jobs = job;
    pthread_mutex_unlock(&lz->mu);

    rc = restore_path(lz, path, &res);

    pthread_mutex_lock(&lz->mu);
    if (res.restored) {
        drop_entry_locked(lz, path);
        lz->stats.n_restores++;
    } else if (rc == EIO) {
        lz->stats.n_restore_failures++;
        snprintf(lz->stats.last_error, sizeof lz->stats.last_error, "restore of %s failed", path);
    }
    for (struct lazy_job **pp = &lz->jobs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == job) {
            *pp = job->next;
            break;
        }
    }
    job->done = true;
    job->rc = rc;
    job->res = res;
    pthread_cond_broadcast(&lz->job_cv);
    if (--job->n_refs == 0) {
        free(job->path);
        free(job);
    }
    pthread_mutex_unlock(&lz->mu);
    if (out != NULL)
        *out = res;
    return rc;
}

void lazy_stats(struct lazy *lz, struct lazy_stats *out)
{
    pthread_mutex_lock(&lz->mu);
    *out = lz->stats;
    out->n_virtual = lz->n_entries;
    pthread_mutex_unlock(&lz->mu);
}

void lazy_each(struct lazy *lz, lazy_each_fn *fn, void *arg)
{
    pthread_mutex_lock(&lz->mu);
    for (size_t i = 0; i < lz->n_entries; i++) {
        const struct lazy_entry *e = &lz->entries[i];

        fn(arg, e->path, e->db_name, e->size, e->size_known);
    }
    pthread_mutex_unlock(&lz->mu);
}
