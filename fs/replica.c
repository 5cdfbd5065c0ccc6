/* fs/replica.c - the replication glue (contract in fs/replica.h and fs/hooks.h).
 *
 * Objects:  struct replica (the hooks' arg) holds the S3 client, the replicator, the lazy
 *           restore cache and a hash table path -> struct rdb. One rdb per known database
 *           holds exactly one replicator reference (db) while it is in the table; open handles
 *           (struct rfh) point at it and keep it alive (n_refs).
 * Lock:     replica.mu guards the table, the handle list, rdb.n_refs, rdb.n_fsync, rdb.dying.
 *           rdb.db / rdb.path / rdb.db_name change on the loop thread only (also under mu);
 *           loop hooks read them without the lock. mu is never held across a call into the
 *           replicator, lazy restore or S3.
 * fsync vs unlink/rename: a durable fsync may wait on a db for seconds on a worker thread. An
 *           unlink or rename on the loop thread meanwhile moves the old repl_db to rdb.dying;
 *           the last fsync to finish hands it to repl_db_unlinked. */
#include "fs/replica.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "fs/config.h"
#include "fs/lazy.h"
#include "fs/status.h"
#include "s3/s3.h"
#include "wal/compress.h"
#include "wal/layout.h"
#include "wal/replicator.h"

#define REPLICA_TABLE_BUCKETS 1024u
#define REPLICA_PATH_MAX 4096
#define REPLICA_WALK_DEPTH_MAX 64
#define REPLICA_PROBE_ATTEMPTS 2
#define REPLICA_PROBE_CONNECT_MS 3000

struct dying {
    struct repl_db *db;
    struct dying *next;
};

struct rdb {
    char *path; /* relative path (loop thread / under mu) */
    char *db_name;
    struct repl_db *db;  /* one replicator reference; NULL once unlinked or renamed away */
    unsigned n_refs;     /* guarded by mu: 1 while in the table + one per handle */
    unsigned n_fsync;    /* guarded by mu: fsyncs in flight on db */
    struct dying *dying; /* guarded by mu: old dbs waiting for n_fsync == 0 */
    bool in_table;       /* guarded by mu */
    struct rdb *next;    /* hash chain, guarded by mu */
};

enum rfh_kind {
    RFH_NONE,  /* not a database (decided at the first write at offset 0) */
    RFH_MAYBE, /* empty or truncated file: becomes a database at its first header write */
    RFH_DB,
    RFH_WAL,
};

struct rfh {
    enum rfh_kind kind;
    struct rdb *e;           /* RFH_DB / RFH_WAL */
    char *path;              /* RFH_MAYBE: where to look on promotion */
    struct rfh *prev, *next; /* all handles, guarded by mu (freed at shutdown if left) */
};

struct replica {
    const struct fs_config *cfg;
    struct fs_hook_env env; /* copied at mount_start; strings borrowed */
    struct s3_conf s3conf;
    struct s3_client *s3;
    struct replicator *repl;
    struct lazy *lazy;
    bool started;
    pthread_mutex_t mu;
    struct rdb *table[REPLICA_TABLE_BUCKETS]; /* guarded by mu */
    struct rfh *handles;                      /* guarded by mu */
};

/* ---------------------------------------------------------------- pure helpers */

bool replica_is_db_header(const void *p, size_t len)
{
    return len >= REPLICA_SQLITE_MAGIC_BYTES &&
           memcmp(p, REPLICA_SQLITE_MAGIC, REPLICA_SQLITE_MAGIC_BYTES) == 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t k = strlen(suffix);

    return n > k && memcmp(s + n - k, suffix, k) == 0 && s[n - k - 1] != '/';
}

enum replica_name_kind replica_name_kind(const char *path)
{
    if (has_suffix(path, "-wal"))
        return REPLICA_NAME_WAL;
    if (has_suffix(path, "-shm") || has_suffix(path, "-journal"))
        return REPLICA_NAME_SIDECAR;
    return REPLICA_NAME_MAIN;
}

bool replica_wal_owner(const char *path, char *out, size_t cap)
{
    size_t n = strlen(path);

    if (!has_suffix(path, "-wal") || n - 4 >= cap)
        return false;
    memcpy(out, path, n - 4);
    out[n - 4] = '\0';
    return true;
}

void replica_bucket_error(int rc, const char *bucket, const char *endpoint, const char *detail,
                          char *out, size_t cap)
{
    if (rc == EACCES && strstr(detail, "RequestTimeTooSkewed") != NULL) {
        snprintf(out, cap,
                 "S3 at %s refused the request because this machine's clock is off by more "
                 "than 15 minutes (%s); fix: set the system time (e.g. timedatectl set-ntp true)",
                 endpoint, detail);
        return;
    }
    switch (rc) {
    case EACCES:
        snprintf(out, cap,
                 "S3 refused the credentials for bucket '%s' at %s (%s); fix: set "
                 "LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID and LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY "
                 "(or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) to a key allowed on the bucket",
                 bucket, endpoint, detail);
        break;
    case ENOENT:
        snprintf(out, cap,
                 "bucket '%s' does not exist at %s (%s); fix: create it (aws s3 mb s3://%s) "
                 "or name an existing one with -o bucket=NAME / LIBSQL_BOTTOMLESS_BUCKET",
                 bucket, endpoint, detail, bucket);
        break;
    case EINVAL: /* a 400: the server answered, and refused the request as malformed */
        snprintf(out, cap,
                 "%s rejected the request for bucket '%s' (%s); fix: check the bucket name (S3 "
                 "bucket names are 3-63 lowercase letters, digits, dots and hyphens: -o "
                 "bucket=NAME / LIBSQL_BOTTOMLESS_BUCKET), the region, and that -o endpoint=URL "
                 "is the S3 API's",
                 endpoint, bucket, detail);
        break;
    default:
        snprintf(out, cap,
                 "cannot reach S3 endpoint %s for bucket '%s' (%s: %s); fix: check -o "
                 "endpoint=URL / LIBSQL_BOTTOMLESS_ENDPOINT and that the server is up",
                 endpoint, bucket, errno_name(rc), detail);
        break;
    }
}

/* ---------------------------------------------------------------- the database table */

static unsigned path_hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h % REPLICA_TABLE_BUCKETS;
}

/* mu held. */
static struct rdb *table_find_locked(struct replica *r, const char *path)
{
    for (struct rdb *e = r->table[path_hash(path)]; e != NULL; e = e->next)
        if (strcmp(e->path, path) == 0)
            return e;
    return NULL;
}

/* mu held. */
static void table_insert_locked(struct replica *r, struct rdb *e)
{
    unsigned h = path_hash(e->path);

    e->next = r->table[h];
    r->table[h] = e;
    e->in_table = true;
    e->n_refs++;
}

/* mu held. Drops the table's reference; the caller frees e when the result is true. */
static bool table_remove_locked(struct replica *r, struct rdb *e)
{
    for (struct rdb **pp = &r->table[path_hash(e->path)]; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            e->next = NULL;
            e->in_table = false;
            return --e->n_refs == 0;
        }
    }
    return false;
}

static void rdb_free(struct rdb *e)
{
    if (e == NULL)
        return;
    free(e->path);
    free(e->db_name);
    free(e);
}

/* Drops one reference (a handle's). */
static void rdb_unref(struct replica *r, struct rdb *e)
{
    bool last;

    pthread_mutex_lock(&r->mu);
    last = --e->n_refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last)
        rdb_free(e);
}

static int backing_paths(struct replica *r, const char *path, char *db_path, char *wal_path,
                         size_t cap)
{
    int n = snprintf(db_path, cap, "%s/%s", r->env.backing_dir, path);

    if (n < 0 || (size_t)n >= cap)
        return ENAMETOOLONG;
    n = snprintf(wal_path, cap, "%s/%s-wal", r->env.backing_dir, path);
    if (n < 0 || (size_t)n >= cap)
        return ENAMETOOLONG;
    return 0;
}

/* Opens path in the replicator (outside mu) and enters it in the table, or returns the entry
 * already there. The returned entry carries one extra reference for the caller when take_ref. */
static struct rdb *rdb_get(struct replica *r, const char *path, bool take_ref)
{
    char db_name[REPL_NAME_MAX];
    char db_path[REPLICA_PATH_MAX + 64];
    char wal_path[REPLICA_PATH_MAX + 64];
    struct err err = {0};
    struct repl_db *db;
    struct rdb *e;
    struct rdb *fresh;

    pthread_mutex_lock(&r->mu);
    e = table_find_locked(r, path);
    if (e != NULL && take_ref)
        e->n_refs++;
    pthread_mutex_unlock(&r->mu);
    if (e != NULL || r->repl == NULL)
        return e;

    if (layout_db_name_from_path(path, db_name, sizeof db_name, &err) != 0) {
        LOG_WARN("replica: not replicated path=%s: %s", path, err.msg);
        return NULL;
    }
    if (backing_paths(r, path, db_path, wal_path, sizeof db_path) != 0) {
        LOG_WARN("replica: not replicated path=%s: path too long", path);
        return NULL;
    }
    db = repl_db_open(r->repl, db_name, db_path, wal_path, &err);
    if (db == NULL) {
        LOG_ERR("replica: cannot replicate db=%s err=%s: %s", db_name, errno_name(err.code),
                err.msg);
        return NULL;
    }
    fresh = calloc(1, sizeof(*fresh));
    if (fresh != NULL) {
        fresh->path = strdup(path);
        fresh->db_name = strdup(db_name);
    }
    if (fresh == NULL || fresh->path == NULL || fresh->db_name == NULL) {
        LOG_ERR("replica: out of memory db=%s", db_name);
        rdb_free(fresh);
        repl_db_close(db);
        return NULL;
    }
    fresh->db = db;
    pthread_mutex_lock(&r->mu);
    e = table_find_locked(r, path);
    if (e == NULL) {
        table_insert_locked(r, fresh);
        e = fresh;
        fresh = NULL;
    }
    if (take_ref)
        e->n_refs++;
    pthread_mutex_unlock(&r->mu);
    if (fresh != NULL) { /* lost a race with another opener: same db, drop our reference */
        repl_db_close(fresh->db);
        rdb_free(fresh);
    } else {
        LOG_DEBUG("replica: database db=%s path=%s", e->db_name, e->path);
    }
    return e;
}

/* Is the backing file at path (relative) a database? */
static bool backing_is_db(struct replica *r, const char *path)
{
    uint8_t hdr[REPLICA_SQLITE_MAGIC_BYTES];
    size_t got = 0;
    int fd = openat(r->env.backing_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    bool is_db = false;

    if (fd < 0)
        return false;
    if (fileio_pread_full(fd, hdr, sizeof hdr, 0, &got) == 0)
        is_db = replica_is_db_header(hdr, got);
    close(fd);
    return is_db;
}

/* Takes the db out of e for an unlink/rename (loop thread). With an fsync in flight the db is
 * parked on e->dying and NULL is returned: the last fsync tombstones it. */
static struct repl_db *rdb_detach(struct replica *r, struct rdb *e)
{
    struct repl_db *db;
    struct dying *d = NULL;

    pthread_mutex_lock(&r->mu);
    db = e->db;
    e->db = NULL;
    if (db != NULL && e->n_fsync > 0) {
        d = calloc(1, sizeof(*d));
        if (d != NULL) {
            d->db = db;
            d->next = e->dying;
            e->dying = d;
            db = NULL;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return db;
}

/* ---------------------------------------------------------------- hooks: files */

static struct rfh *rfh_new(struct replica *r, enum rfh_kind kind, struct rdb *e, const char *path)
{
    struct rfh *h = calloc(1, sizeof(*h));

    if (h == NULL) {
        if (e != NULL)
            rdb_unref(r, e);
        LOG_ERR("replica: out of memory path=%s", path);
        return NULL;
    }
    h->kind = kind;
    h->e = e;
    if (kind == RFH_MAYBE) {
        h->path = strdup(path);
        if (h->path == NULL) {
            free(h);
            return NULL;
        }
    }
    pthread_mutex_lock(&r->mu);
    h->next = r->handles;
    if (r->handles != NULL)
        r->handles->prev = h;
    r->handles = h;
    pthread_mutex_unlock(&r->mu);
    return h;
}

static void *hook_file_open(void *arg, const char *path, int fd, int flags)
{
    struct replica *r = arg;
    char owner[REPLICA_PATH_MAX];
    uint8_t hdr[REPLICA_SQLITE_MAGIC_BYTES];
    size_t got = 0;
    struct rdb *e;

    if (r->repl == NULL)
        return NULL;
    switch (replica_name_kind(path)) {
    case REPLICA_NAME_SIDECAR:
        return NULL;
    case REPLICA_NAME_WAL:
        if (!replica_wal_owner(path, owner, sizeof owner))
            return NULL;
        pthread_mutex_lock(&r->mu);
        e = table_find_locked(r, owner);
        if (e != NULL)
            e->n_refs++;
        pthread_mutex_unlock(&r->mu);
        if (e == NULL && backing_is_db(r, owner))
            e = rdb_get(r, owner, true);
        return e != NULL ? rfh_new(r, RFH_WAL, e, path) : NULL;
    case REPLICA_NAME_MAIN:
        break;
    }
    if (path[0] == '\0')
        return NULL;
    pthread_mutex_lock(&r->mu);
    e = table_find_locked(r, path);
    if (e != NULL)
        e->n_refs++;
    pthread_mutex_unlock(&r->mu);
    if (e != NULL)
        return rfh_new(r, RFH_DB, e, path);
    if (fileio_pread_full(fd, hdr, sizeof hdr, 0, &got) != 0)
        return NULL;
    if (replica_is_db_header(hdr, got)) {
        e = rdb_get(r, path, true);
        return e != NULL ? rfh_new(r, RFH_DB, e, path) : NULL;
    }
    if (got < sizeof hdr || (flags & O_TRUNC) != 0)
        return rfh_new(r, RFH_MAYBE, NULL, path);
    return NULL;
}

static void hook_release(void *arg, void *fh)
{
    struct replica *r = arg;
    struct rfh *h = fh;

    pthread_mutex_lock(&r->mu);
    if (h->prev != NULL)
        h->prev->next = h->next;
    else
        r->handles = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
    pthread_mutex_unlock(&r->mu);
    if (h->e != NULL)
        rdb_unref(r, h->e);
    free(h->path);
    free(h);
}

/* RFH_MAYBE: has another handle made path a database meanwhile? */
static void maybe_adopt(struct replica *r, struct rfh *h)
{
    struct rdb *e;

    pthread_mutex_lock(&r->mu);
    e = table_find_locked(r, h->path);
    if (e != NULL)
        e->n_refs++;
    pthread_mutex_unlock(&r->mu);
    if (e != NULL) {
        h->kind = RFH_DB;
        h->e = e;
    }
}

static int hook_write_before(void *arg, void *fh, uint64_t off, size_t len)
{
    struct rfh *h = fh;
    struct repl_db *db;

    if (h->kind == RFH_MAYBE && off != 0)
        maybe_adopt(arg, h);
    if (h->e == NULL)
        return 0;
    db = h->e->db;
    if (db == NULL)
        return 0;
    if (h->kind == RFH_WAL)
        return repl_wal_before_write(db, off, len); /* ENOSPC: staging disk full */
    repl_db_before_write(db, off, len);
    return 0;
}

static void hook_write_after(void *arg, void *fh, uint64_t off, const void *buf, size_t len,
                             ssize_t result)
{
    struct replica *r = arg;
    struct rfh *h = fh;
    struct repl_db *db;

    (void)len;
    if (result <= 0)
        return;
    if (h->kind == RFH_MAYBE && off == 0) {
        if (replica_is_db_header(buf, (size_t)result)) {
            struct rdb *e = rdb_get(r, h->path, true);

            if (e != NULL) {
                h->kind = RFH_DB;
                h->e = e;
            }
        } else {
            maybe_adopt(r, h);
            if (h->kind == RFH_MAYBE)
                h->kind = RFH_NONE;
        }
    }
    if (h->e == NULL)
        return;
    db = h->e->db;
    if (db == NULL)
        return;
    if (h->kind == RFH_WAL)
        repl_wal_after_write(db, off, buf, (size_t)result);
    else
        repl_db_after_write(db, off, buf, (size_t)result);
}

/* The record and kind a truncate or fallocate applies to (fh may be NULL). Returns a
 * referenced record (caller unrefs) or NULL. */
static struct rdb *resolve(struct replica *r, struct rfh *h, const char *path, enum rfh_kind *kind)
{
    char owner[REPLICA_PATH_MAX];
    struct rdb *e = NULL;

    if (h != NULL) {
        if (h->kind == RFH_MAYBE)
            maybe_adopt(r, h);
        if (h->e == NULL)
            return NULL;
        pthread_mutex_lock(&r->mu);
        h->e->n_refs++;
        pthread_mutex_unlock(&r->mu);
        *kind = h->kind;
        return h->e;
    }
    if (path == NULL)
        return NULL;
    *kind = RFH_DB;
    if (replica_name_kind(path) == REPLICA_NAME_WAL) {
        if (!replica_wal_owner(path, owner, sizeof owner))
            return NULL;
        path = owner;
        *kind = RFH_WAL;
    }
    pthread_mutex_lock(&r->mu);
    e = table_find_locked(r, path);
    if (e != NULL)
        e->n_refs++;
    pthread_mutex_unlock(&r->mu);
    return e;
}

static int hook_truncate_before(void *arg, void *fh, const char *path, uint64_t size)
{
    struct replica *r = arg;
    enum rfh_kind kind = RFH_NONE;
    struct rdb *e = resolve(r, fh, path, &kind);
    int rc = 0;

    if (e == NULL)
        return 0;
    if (e->db != NULL) {
        if (kind == RFH_WAL)
            rc = repl_wal_before_truncate(e->db, size); /* ENOSPC: staging disk full */
        else if (kind == RFH_DB)
            repl_db_before_truncate(e->db, size);
    }
    rdb_unref(r, e);
    return rc;
}

static void hook_truncate_after(void *arg, void *fh, const char *path, uint64_t size, int result)
{
    struct replica *r = arg;
    enum rfh_kind kind = RFH_NONE;
    struct rdb *e;

    if (result != 0)
        return;
    e = resolve(r, fh, path, &kind);
    if (e == NULL)
        return;
    if (e->db != NULL && kind == RFH_WAL)
        repl_wal_after_truncate(e->db, size);
    rdb_unref(r, e);
}

static void hook_fallocate_before(void *arg, void *fh, int mode, uint64_t off, uint64_t len)
{
    struct rfh *h = fh;
    struct repl_db *db;

    (void)arg;
    /* Only hole punching and zeroing change bytes that are already there. */
    if ((mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) == 0 || h->e == NULL)
        return;
    db = h->e->db;
    if (db == NULL || len > SIZE_MAX)
        return;
    if (h->kind == RFH_WAL) {
        LOG_WARN("replica: fallocate mode=0x%x on a -wal db=%s: bytes not decoded", mode,
                 h->e->db_name);
        (void)repl_wal_before_write(db, off, (size_t)len); /* fallocate cannot be refused */
    } else {
        repl_db_before_write(db, off, (size_t)len);
    }
}

static int hook_fsync(void *arg, void *fh, bool datasync)
{
    struct replica *r = arg;
    struct rfh *h = fh;
    struct repl_db *db;
    struct dying *dead = NULL;
    int rc;

    (void)datasync;
    if (h->kind != RFH_WAL || h->e == NULL)
        return 0;
    pthread_mutex_lock(&r->mu);
    db = h->e->db;
    if (db != NULL)
        h->e->n_fsync++;
    pthread_mutex_unlock(&r->mu);
    if (db == NULL)
        return 0;
    rc = repl_wal_fsync(db);
    LOG_DEBUG("replica: fsync db=%s durable=%d rc=%d", h->e->db_name, r->cfg->durable, rc);
    pthread_mutex_lock(&r->mu);
    if (--h->e->n_fsync == 0) {
        dead = h->e->dying;
        h->e->dying = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    while (dead != NULL) {
        struct dying *next = dead->next;

        repl_db_unlinked(dead->db);
        free(dead);
        dead = next;
    }
    if (rc != 0)
        LOG_WARN("replica: durable fsync failed db=%s err=%s", h->e->db_name, errno_name(rc));
    return rc;
}

/* ---------------------------------------------------------------- hooks: names */

/* Tombstones the database at path (table entry removed). */
static void forget_db(struct replica *r, const char *path)
{
    struct rdb *e;
    struct repl_db *db = NULL;
    bool last = false;
    struct stat vst;

    pthread_mutex_lock(&r->mu);
    e = table_find_locked(r, path);
    if (e != NULL)
        e->n_refs++; /* keep it while we work */
    pthread_mutex_unlock(&r->mu);
    /* A database only listed from the bucket, deleted before anything opened it: it gets its
     * tombstone like any other (hiding it here only, it came back at the next mount). */
    if (e == NULL && r->lazy != NULL && lazy_lookup(r->lazy, path, &vst) == 0)
        e = rdb_get(r, path, true);
    if (e != NULL) {
        db = rdb_detach(r, e);
        pthread_mutex_lock(&r->mu);
        table_remove_locked(r, e);
        last = --e->n_refs == 0;
        pthread_mutex_unlock(&r->mu);
        if (db != NULL) {
            LOG_INFO("replica: database deleted db=%s, tombstone", e->db_name);
            repl_db_unlinked(db);
        }
        if (last)
            rdb_free(e);
    }
    if (r->lazy != NULL)
        lazy_forget(r->lazy, path);
}

static void hook_unlinked(void *arg, const char *path)
{
    struct replica *r = arg;
    char owner[REPLICA_PATH_MAX];
    struct rdb *e;

    if (r->repl == NULL)
        return;
    switch (replica_name_kind(path)) {
    case REPLICA_NAME_SIDECAR:
        return;
    case REPLICA_NAME_WAL:
        if (!replica_wal_owner(path, owner, sizeof owner))
            return;
        pthread_mutex_lock(&r->mu);
        e = table_find_locked(r, owner);
        if (e != NULL)
            e->n_refs++;
        pthread_mutex_unlock(&r->mu);
        if (e != NULL) {
            if (e->db != NULL)
                repl_wal_unlinked(e->db);
            rdb_unref(r, e);
        }
        return;
    case REPLICA_NAME_MAIN:
        forget_db(r, path);
        return;
    }
}

/* Moves the database record e to newpath (loop thread). */
static void move_db(struct replica *r, struct rdb *e, const char *newpath)
{
    char db_name[REPL_NAME_MAX];
    char db_path[REPLICA_PATH_MAX + 64];
    char wal_path[REPLICA_PATH_MAX + 64];
    struct err err = {0};
    struct repl_db *old;
    struct repl_db *db = NULL;
    struct repl_db *orphan = NULL;
    struct rdb *victim = NULL;
    char *p2 = NULL;
    char *n2 = NULL;
    bool fsync_busy;

    if (layout_db_name_from_path(newpath, db_name, sizeof db_name, &err) != 0 ||
        backing_paths(r, newpath, db_path, wal_path, sizeof db_path) != 0) {
        LOG_WARN("replica: renamed database not replicated path=%s: %s", newpath, err.msg);
        db_name[0] = '\0';
    }
    pthread_mutex_lock(&r->mu);
    fsync_busy = e->n_fsync > 0;
    pthread_mutex_unlock(&r->mu);
    if (fsync_busy || db_name[0] == '\0') {
        old = rdb_detach(r, e); /* tombstoned now, or by the last fsync */
        if (old != NULL)
            repl_db_unlinked(old);
        if (db_name[0] != '\0')
            db = repl_db_open(r->repl, db_name, db_path, wal_path, &err);
    } else {
        old = e->db;
        db = old != NULL ? repl_db_renamed(old, db_name, db_path, wal_path, &err) : NULL;
        if (old == NULL && db_name[0] != '\0')
            db = repl_db_open(r->repl, db_name, db_path, wal_path, &err);
    }
    if (db == NULL && db_name[0] != '\0')
        LOG_ERR("replica: renamed database not replicated db=%s: %s", db_name, err.msg);
    p2 = strdup(newpath);
    n2 = strdup(db_name);
    pthread_mutex_lock(&r->mu);
    table_remove_locked(r, e); /* the caller holds a reference: never the last */
    e->db = db;
    if (p2 != NULL && n2 != NULL) {
        free(e->path);
        free(e->db_name);
        e->path = p2;
        e->db_name = n2;
        p2 = n2 = NULL;
        if (db != NULL) {
            /* RENAME_EXCHANGE: the other record still sits here until it is moved too. */
            victim = table_find_locked(r, e->path);
            if (victim != NULL && !table_remove_locked(r, victim))
                victim = NULL;
            table_insert_locked(r, e);
        }
    } else if (db != NULL) {
        LOG_ERR("replica: out of memory, renamed database dropped db=%s", db_name);
        orphan = db;
        e->db = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    if (victim != NULL) {
        if (victim->db != NULL)
            repl_db_close(victim->db);
        rdb_free(victim);
    }
    repl_db_close(orphan);
    free(p2);
    free(n2);
    LOG_INFO("replica: database renamed to db=%s", db_name);
}

/* Referenced records whose path is from or below from/ (for directory renames). */
static size_t collect_moves(struct replica *r, const char *from, struct rdb ***out)
{
    size_t n = 0, cap = 0;
    size_t len = strlen(from);
    struct rdb **v = NULL;

    pthread_mutex_lock(&r->mu);
    for (unsigned b = 0; b < REPLICA_TABLE_BUCKETS; b++) {
        for (struct rdb *e = r->table[b]; e != NULL; e = e->next) {
            bool match = strcmp(e->path, from) == 0 ||
                         (strncmp(e->path, from, len) == 0 && e->path[len] == '/');

            if (!match)
                continue;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                struct rdb **nv = realloc(v, ncap * sizeof(*nv));

                if (nv == NULL)
                    break;
                v = nv;
                cap = ncap;
            }
            e->n_refs++;
            v[n++] = e;
        }
    }
    pthread_mutex_unlock(&r->mu);
    *out = v;
    return n;
}

static void rename_tree(struct replica *r, struct rdb **v, size_t n, const char *from,
                        const char *to)
{
    size_t len = strlen(from);

    for (size_t i = 0; i < n; i++) {
        char newpath[REPLICA_PATH_MAX];
        int k = snprintf(newpath, sizeof newpath, "%s%s", to, v[i]->path + len);

        if (k > 0 && (size_t)k < sizeof newpath) {
            if (r->lazy != NULL)
                lazy_forget(r->lazy, v[i]->path);
            move_db(r, v[i], newpath);
        }
        rdb_unref(r, v[i]);
    }
    free(v);
}

static void hook_renamed(void *arg, const char *from, const char *to, unsigned flags)
{
    struct replica *r = arg;
    struct rdb **a = NULL;
    struct rdb **b = NULL;
    size_t na, nb = 0;

    if (r->repl == NULL)
        return;
    if (replica_name_kind(from) != REPLICA_NAME_MAIN ||
        replica_name_kind(to) != REPLICA_NAME_MAIN) {
        LOG_DEBUG("replica: rename of a -wal/-shm/-journal from=%s to=%s", from, to);
        return;
    }
    na = collect_moves(r, from, &a);
    if (flags & RENAME_EXCHANGE) {
        nb = collect_moves(r, to, &b);
    } else {
        /* Whatever was at `to` is gone. A database replaced by a database is retired by
         * repl_db_renamed (the new name's generation gets a .dep to it, no tombstone: a
         * tombstone in the same second would hide the new generation); anything else is
         * tombstoned. */
        bool from_is_db = false;
        struct rdb **gone = NULL;
        size_t ng = collect_moves(r, to, &gone);

        for (size_t i = 0; i < na; i++)
            from_is_db = from_is_db || (strcmp(a[i]->path, from) == 0 && a[i]->db != NULL);

        for (size_t i = 0; i < ng; i++) {
            char p[REPLICA_PATH_MAX];

            snprintf(p, sizeof p, "%s", gone[i]->path);
            if (from_is_db && strcmp(p, to) == 0 && gone[i]->db != NULL) {
                bool last;

                pthread_mutex_lock(&r->mu);
                gone[i]->db = NULL; /* retired by repl_db_renamed below */
                table_remove_locked(r, gone[i]);
                last = --gone[i]->n_refs == 0;
                pthread_mutex_unlock(&r->mu);
                if (last)
                    rdb_free(gone[i]);
                continue;
            }
            rdb_unref(r, gone[i]);
            forget_db(r, p);
        }
        free(gone);
    }
    rename_tree(r, a, na, from, to);
    if (b != NULL)
        rename_tree(r, b, nb, to, from);
}

/* ---------------------------------------------------------------- hooks: lazy, status */

static int hook_lookup_virtual(void *arg, const char *path, struct stat *st_out)
{
    struct replica *r = arg;

    if (r->lazy == NULL)
        return ENOENT;
    return lazy_lookup(r->lazy, path, st_out);
}

static int hook_list_virtual(void *arg, const char *dir, fs_hook_emit_fn *emit, void *emit_arg)
{
    struct replica *r = arg;

    if (r->lazy == NULL)
        return 0;
    return lazy_list(r->lazy, dir, emit, emit_arg);
}

static int hook_materialise(void *arg, const char *path)
{
    struct replica *r = arg;
    struct lazy_restored res;
    int rc;

    if (r->lazy == NULL)
        return ENOENT;
    rc = lazy_restore(r->lazy, path, &res);
    if (rc == 0 && res.restored) {
        /* Start replicating at once: the replicator finds the bucket's newest generation is
         * the one just restored and continues in a new generation with .dep to it. */
        struct rdb *e = rdb_get(r, path, false);

        (void)e;
    }
    return rc;
}

static int hook_render_status(void *arg, struct buf *out)
{
    struct replica *r = arg;
    struct status_src src = {
        .repl = r->repl,
        .lazy = r->lazy,
        .s3 = r->s3,
        .bucket = r->s3conf.bucket,
        .endpoint = r->s3conf.endpoint,
        .backing_dir = r->env.backing_dir,
        .durable = r->cfg->durable,
    };

    return status_render(&src, out);
}

/* ---------------------------------------------------------------- lifecycle */

/* Opens every database below dirfd (relative path prefix rel) in the replicator. */
static void walk_dir(struct replica *r, int dfd, const char *rel, int depth, size_t *n_found)
{
    DIR *d;
    struct dirent *de;

    if (depth > REPLICA_WALK_DEPTH_MAX) {
        LOG_WARN("replica: startup scan stops at depth %d path=%s", depth, rel);
        close(dfd);
        return;
    }
    d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return;
    }
    while ((de = readdir(d)) != NULL) {
        char path[REPLICA_PATH_MAX];
        struct stat st;
        int n;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (depth == 0 && strcmp(de->d_name, FS_STAGING_NAME) == 0)
            continue;
        n = snprintf(path, sizeof path, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
        if (n < 0 || (size_t)n >= sizeof path)
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

            if (sub >= 0)
                walk_dir(r, sub, path, depth + 1, n_found);
            continue;
        }
        if (!S_ISREG(st.st_mode) || replica_name_kind(path) != REPLICA_NAME_MAIN)
            continue;
        if (backing_is_db(r, path) && rdb_get(r, path, false) != NULL)
            (*n_found)++;
    }
    closedir(d);
}

static void replica_free(struct replica *r);

/* repl_conf.replace_wal: the replicator names backing files by absolute path, the daemon by
 * path relative to the mount. */
static int replace_wal(void *arg, const char *wal_path, const char *stash)
{
    struct replica *r = arg;
    size_t n = strlen(r->env.backing_dir);
    if (r->env.replace_file == NULL || strncmp(wal_path, r->env.backing_dir, n) != 0 ||
        wal_path[n] != '/')
        return EINVAL;
    return r->env.replace_file(r->env.replace_arg, wal_path + n + 1, stash);
}

static int mount_start(struct replica *r, const struct fs_hook_env *env, struct err *err)
{
    const struct fs_config *cfg = r->cfg;
    struct repl_conf rc_conf;
    struct lazy_conf lc;
    struct err e2 = {0};
    size_t n_dbs = 0;
    int fd;
    int rc;

    r->env = *env;
    r->s3 = s3_client_new(&r->s3conf, err);
    if (r->s3 == NULL)
        return err != NULL && err->code ? err->code : ENOMEM;
    repl_conf_init(&rc_conf);
    rc_conf.staging_dir = env->staging_dir;
    rc_conf.batch_interval_ms = cfg->batch_interval_ms;
    rc_conf.batch_max_frames = cfg->batch_max_frames;
    if (cfg->compression != NULL && compression_parse(cfg->compression, &rc_conf.compression))
        return ERR(err, EINVAL, "-o compression=%s: use zstd, gzip or none", cfg->compression);
    rc_conf.durable = cfg->durable;
    rc_conf.durable_timeout_ms = cfg->durable_timeout_ms;
    rc_conf.snapshot_max_gens = cfg->snapshot_max_gens;
    rc_conf.snapshot_wal_pct = cfg->snapshot_wal_pct;
    rc_conf.snapshot_wal_min_mib = cfg->snapshot_wal_min_mib;
    rc_conf.continue_generations = !cfg->gen_per_checkpoint;
    rc_conf.lease_ttl_ms = cfg->lease_ttl_ms;
    rc_conf.wal_cached = cfg->writeback;
    rc_conf.replace_wal = replace_wal;
    rc_conf.replace_arg = r;
    r->repl = repl_new(&rc_conf, r->s3, err);
    if (r->repl == NULL)
        return err != NULL && err->code ? err->code : ENOMEM;
    rc = repl_start(r->repl, err);
    if (rc != 0)
        return rc;
    memset(&lc, 0, sizeof lc);
    lc.s3 = r->s3;
    lc.backing_dir = env->backing_dir;
    lc.backing_fd = env->backing_fd;
    lc.scratch_dir = env->staging_dir;
    lc.hidden_name = FS_STAGING_NAME;
    lc.ttl_ms = cfg->list_ttl_ms;
    r->lazy = lazy_new(&lc, err);
    if (r->lazy == NULL)
        return err != NULL && err->code ? err->code : ENOMEM;
    fd = openat(env->backing_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0)
        walk_dir(r, fd, "", 0, &n_dbs);
    rc = lazy_refresh(r->lazy, true, &e2);
    if (rc != 0)
        LOG_WARN("replica: bucket listing failed, no lazy entries yet: %s", e2.msg);
    r->started = true;
    LOG_INFO("replica: started bucket=%s endpoint=%s local_dbs=%zu durable=%d", r->s3conf.bucket,
             r->s3conf.endpoint, n_dbs, cfg->durable);
    return 0;
}

/* On failure everything is freed here: the daemon calls no shutdown after a failed start. */
static int hook_mount_start(void *arg, const struct fs_hook_env *env, struct err *err)
{
    struct replica *r = arg;
    int rc = mount_start(r, env, err);

    if (rc != 0) {
        err_prefix(err, "replication start");
        replica_free(r);
    }
    return rc;
}

struct leftover_ctx {
    size_t n;
};

static void log_leftover(void *arg, const struct repl_db_status *st)
{
    struct leftover_ctx *c = arg;

    if (st->last_uploaded_frame >= st->last_committed_frame && st->staged_bytes == 0 &&
        !st->snapshot_pending)
        return;
    c->n++;
    LOG_ERR("replica: not uploaded db=%s gen=%s frames=%u-%u staged_bytes=%llu "
            "snapshot_pending=%d last_error=%s",
            st->db_name, st->generation, st->last_uploaded_frame + 1, st->last_committed_frame,
            (unsigned long long)st->staged_bytes, st->snapshot_pending, st->last_error);
}

static void replica_free(struct replica *r)
{
    struct rdb **v = NULL;
    size_t n = 0, cap = 0;

    /* Every handle still open (lazy unmount): drop them. */
    while (r->handles != NULL) {
        struct rfh *h = r->handles;

        r->handles = h->next;
        if (h->e != NULL && --h->e->n_refs == 0)
            rdb_free(h->e);
        free(h->path);
        free(h);
    }
    for (unsigned b = 0; b < REPLICA_TABLE_BUCKETS; b++) {
        while (r->table[b] != NULL) {
            struct rdb *e = r->table[b];

            r->table[b] = e->next;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                struct rdb **nv = realloc(v, ncap * sizeof(*nv));

                if (nv == NULL) {
                    if (e->db != NULL)
                        repl_db_close(e->db);
                    rdb_free(e);
                    continue;
                }
                v = nv;
                cap = ncap;
            }
            v[n++] = e;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i]->db != NULL)
            repl_db_close(v[i]->db);
        while (v[i]->dying != NULL) {
            struct dying *d = v[i]->dying;

            v[i]->dying = d->next;
            repl_db_unlinked(d->db);
            free(d);
        }
        rdb_free(v[i]);
    }
    free(v);
    repl_free(r->repl);
    lazy_free(r->lazy);
    s3_client_free(r->s3);
    s3_conf_free(&r->s3conf);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static int hook_shutdown(void *arg)
{
    struct replica *r = arg;
    struct err err = {0};
    uint32_t timeout_ms = r->cfg->flush_timeout_ms;
    int rc = 0;

    if (r->repl != NULL && r->started) {
        LOG_INFO("replica: flushing to S3 (at most %u s)", (unsigned)(timeout_ms / 1000));
        rc = repl_flush(r->repl, timeout_ms, &err);
        if (rc != 0) {
            struct leftover_ctx c = {0};

            repl_status_each(r->repl, log_leftover, &c);
            LOG_ERR("replica: unmount flush incomplete err=%s dbs=%zu: %s; staging kept in %s "
                    "for the next mount",
                    errno_name(rc), c.n, err.msg, r->env.staging_dir);
        } else {
            LOG_INFO("replica: flushed, everything committed is in S3");
        }
    }
    replica_free(r);
    return rc;
}

/* ---------------------------------------------------------------- init */

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

/* HEAD the bucket with a short retry budget (fail fast) before anything is mounted. */
static int probe_bucket(const struct s3_conf *conf, struct err *err)
{
    struct s3_conf pc;
    struct s3_client *c;
    struct err e2 = {0};
    char msg[sizeof err->msg];
    int rc;

    s3_conf_copy(&pc, conf);
    pc.max_attempts = REPLICA_PROBE_ATTEMPTS;
    pc.connect_timeout_ms = REPLICA_PROBE_CONNECT_MS;
    c = s3_client_new(&pc, &e2);
    if (c == NULL) {
        s3_conf_free(&pc);
        return ERR(err, e2.code ? e2.code : EINVAL, "S3 client: %s", e2.msg);
    }
    rc = s3_head_bucket(c, &e2);
    s3_client_free(c);
    s3_conf_free(&pc);
    if (rc == 0)
        return 0;
    replica_bucket_error(rc, conf->bucket, conf->endpoint, e2.msg, msg, sizeof msg);
    return ERR(err, rc, "%s", msg);
}

int replica_hooks_init(const struct fs_config *cfg, struct fs_hooks *out, struct err *err)
{
    struct replica *r;
    enum compression comp;
    int rc;

    memset(out, 0, sizeof(*out));
    if (cfg->noreplicate)
        return 0;
    if (cfg->compression != NULL && compression_parse(cfg->compression, &comp) != 0)
        return ERR(err, EINVAL, "-o compression=%s: use zstd, gzip or none", cfg->compression);
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return ERR(err, ENOMEM, "replica: out of memory");
    r->cfg = cfg;
    pthread_mutex_init(&r->mu, NULL);
    s3_conf_init(&r->s3conf);
    r->s3conf.endpoint = dup_or_null(cfg->endpoint);
    r->s3conf.bucket = dup_or_null(cfg->bucket);
    r->s3conf.region = dup_or_null(cfg->region);
    r->s3conf.ca_file = dup_or_null(cfg->ca_file);
    r->s3conf.insecure_tls = cfg->insecure_tls;
    /* Memory bound (issue 6: daemon peak RSS <= 64 MiB): each of the replicator's uploaders
     * holds up to `parallel` parts of part_size in memory; 2 x 2 x 8 MiB. */
    r->s3conf.parallel = 2;
    rc = s3_conf_resolve(&r->s3conf, err);
    if (rc == 0)
        rc = probe_bucket(&r->s3conf, err);
    if (rc != 0) {
        replica_free(r);
        return rc;
    }
    out->arg = r;
    out->mount_start = hook_mount_start;
    out->shutdown = hook_shutdown;
    out->file_open = hook_file_open;
    out->release = hook_release;
    out->write_before = hook_write_before;
    out->write_after = hook_write_after;
    out->truncate_before = hook_truncate_before;
    out->truncate_after = hook_truncate_after;
    out->fallocate_before = hook_fallocate_before;
    out->fsync = hook_fsync;
    out->unlinked = hook_unlinked;
    out->renamed = hook_renamed;
    out->lookup_virtual = hook_lookup_virtual;
    out->list_virtual = hook_list_virtual;
    out->materialise = hook_materialise;
    out->render_status = hook_render_status;
    return 0;
}
