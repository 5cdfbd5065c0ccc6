/* tests/unit/test_replicator.c - the replication engine driven by real SQLite writes.
 *
 * A small VFS shim ("replvfs") wraps the unix VFS and calls the replicator hooks exactly where
 * the FUSE daemon would: repl_wal_before_write / after_write around each -wal xWrite, the
 * truncate pair around xTruncate, repl_wal_unlinked after the -wal is deleted, repl_wal_fsync
 * after xSync, and repl_db_before_write / before_truncate around main-db writes. Real SQLite
 * workloads then go to the Swift S3 server of the harness (LIBSQL_BOTTOMLESS_ENDPOINT; the S3
 * tests are skipped with a message when it is not set), are flushed, restored with the restore
 * engine and compared row by row and page by page with the source.
 * Pure tests (state slots, copy-on-write image) need no server. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "s3/s3.h"
#include "wal/layout.h"
#include "wal/replicator.h"
#include "wal/replstate.h"
#include "wal/restore.h"
#include "wal/snapshot.h"

/* ---- the VFS shim -------------------------------------------------------------------------- */

static struct repl_db *g_db; /* the database the shim reports to (one per test process) */
static sqlite3_vfs g_vfs;
static sqlite3_vfs *g_base;

struct shim_file {
    sqlite3_file base;
    int kind; /* 0 other, 1 main db, 2 wal */
    sqlite3_file *real;
};

static sqlite3_file *REAL(sqlite3_file *f)
{
    return ((struct shim_file *)f)->real;
}

static int shim_close(sqlite3_file *f)
{
    sqlite3_file *r = REAL(f);
    int rc = r->pMethods ? r->pMethods->xClose(r) : SQLITE_OK;
    sqlite3_free(r);
    return rc;
}
static int shim_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
    return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int shim_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
    struct shim_file *sf = (struct shim_file *)f;
    if (g_db && sf->kind == 2)
        repl_wal_before_write(g_db, (uint64_t)o, (size_t)n);
    if (g_db && sf->kind == 1)
        repl_db_before_write(g_db, (uint64_t)o, (size_t)n);
    int rc = sf->real->pMethods->xWrite(sf->real, b, n, o);
    if (rc == SQLITE_OK && g_db && sf->kind == 2)
        repl_wal_after_write(g_db, (uint64_t)o, b, (size_t)n);
    if (rc == SQLITE_OK && g_db && sf->kind == 1)
        repl_db_after_write(g_db, (uint64_t)o, b, (size_t)n);
    return rc;
}
static int shim_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    struct shim_file *sf = (struct shim_file *)f;
    if (g_db && sf->kind == 2)
        repl_wal_before_truncate(g_db, (uint64_t)size);
    if (g_db && sf->kind == 1)
        repl_db_before_truncate(g_db, (uint64_t)size);
    int rc = sf->real->pMethods->xTruncate(sf->real, size);
    if (rc == SQLITE_OK && g_db && sf->kind == 2)
        repl_wal_after_truncate(g_db, (uint64_t)size);
    return rc;
}
static int shim_sync(sqlite3_file *f, int flags)
{
    struct shim_file *sf = (struct shim_file *)f;
    int rc = sf->real->pMethods->xSync(sf->real, flags);
    if (rc == SQLITE_OK && g_db && sf->kind == 2 && repl_wal_fsync(g_db) != 0)
        rc = SQLITE_IOERR_FSYNC;
    return rc;
}
static int shim_size(sqlite3_file *f, sqlite3_int64 *s)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), s);
}
static int shim_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int shim_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int shim_reserved(sqlite3_file *f, int *o)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), o);
}
static int shim_fcntl(sqlite3_file *f, int op, void *a)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, a);
}
static int shim_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int shim_devchar(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int shim_shmmap(sqlite3_file *f, int i, int sz, int ext, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), i, sz, ext, pp);
}
static int shim_shmlock(sqlite3_file *f, int o, int n, int fl)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), o, n, fl);
}
static void shim_shmbarrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int shim_shmunmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static const sqlite3_io_methods shim_methods = {
    2,           shim_close,    shim_read,       shim_write,    shim_truncate, shim_sync,
    shim_size,   shim_lock,     shim_unlock,     shim_reserved, shim_fcntl,    shim_sector,
    shim_devchar, shim_shmmap,  shim_shmlock,    shim_shmbarrier, shim_shmunmap, NULL,
    NULL,
};

static int shim_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out)
{
    struct shim_file *sf = (struct shim_file *)f;
    (void)v;
    memset(sf, 0, sizeof(*sf));
    sf->real = sqlite3_malloc(g_base->szOsFile);
    if (!sf->real)
        return SQLITE_NOMEM;
    memset(sf->real, 0, (size_t)g_base->szOsFile);
    int rc = g_base->xOpen(g_base, name, sf->real, flags, out);
    if (rc != SQLITE_OK) {
        sqlite3_free(sf->real);
        sf->real = NULL;
        return rc;
    }
    sf->kind = (flags & SQLITE_OPEN_MAIN_DB) ? 1 : (flags & SQLITE_OPEN_WAL) ? 2 : 0;
    f->pMethods = &shim_methods;
    return SQLITE_OK;
}
static int shim_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    (void)v;
    int rc = g_base->xDelete(g_base, name, sync_dir);
    size_t l = strlen(name);
    if (rc == SQLITE_OK && g_db && l > 4 && strcmp(name + l - 4, "-wal") == 0)
        repl_wal_unlinked(g_db);
    return rc;
}
static int shim_access(sqlite3_vfs *v, const char *n, int fl, int *o)
{
    (void)v;
    return g_base->xAccess(g_base, n, fl, o);
}
static int shim_fullpath(sqlite3_vfs *v, const char *n, int len, char *o)
{
    (void)v;
    return g_base->xFullPathname(g_base, n, len, o);
}
static int shim_random(sqlite3_vfs *v, int n, char *o)
{
    (void)v;
    return g_base->xRandomness(g_base, n, o);
}
static int shim_sleep(sqlite3_vfs *v, int us)
{
    (void)v;
    return g_base->xSleep(g_base, us);
}
static int shim_time(sqlite3_vfs *v, double *t)
{
    (void)v;
    return g_base->xCurrentTime(g_base, t);
}
static int shim_lasterr(sqlite3_vfs *v, int n, char *b)
{
    (void)v;
    return g_base->xGetLastError(g_base, n, b);
}

static void shim_register(void)
{
    if (g_base)
        return;
    g_base = sqlite3_vfs_find("unix");
    cr_assert_not_null(g_base);
    memset(&g_vfs, 0, sizeof(g_vfs));
    g_vfs.iVersion = 1;
    g_vfs.szOsFile = (int)sizeof(struct shim_file);
    g_vfs.mxPathname = g_base->mxPathname;
    g_vfs.zName = "replvfs";
    g_vfs.xOpen = shim_open;
    g_vfs.xDelete = shim_delete;
    g_vfs.xAccess = shim_access;
    g_vfs.xFullPathname = shim_fullpath;
    g_vfs.xRandomness = shim_random;
    g_vfs.xSleep = shim_sleep;
    g_vfs.xCurrentTime = shim_time;
    g_vfs.xGetLastError = shim_lasterr;
    cr_assert_eq(sqlite3_vfs_register(&g_vfs, 0), SQLITE_OK);
}

/* ---- fixtures ------------------------------------------------------------------------------ */

struct fx {
    char dir[128], staging[192], db_path[192], wal_path[200], target[200];
    char bucket[64];
    struct s3_conf conf;
    struct s3_client *s3;
    struct replicator *r;
    sqlite3 *db;
    uint32_t snapshot_wal_min_mib; /* fx_start's snapshot floor (fx_init: the default) */
};

static bool have_s3(void)
{
    return getenv("LIBSQL_BOTTOMLESS_ENDPOINT") != NULL;
}

static void fx_init(struct fx *f, const char *tag)
{
    struct err e = {0};
    memset(f, 0, sizeof(*f));
    f->snapshot_wal_min_mib = REPL_DEFAULT_SNAPSHOT_WAL_MIN_MIB;
    snprintf(f->dir, sizeof(f->dir), "/tmp/bfs-repl-%s-%d-XXXXXX", tag, (int)getpid());
    cr_assert_not_null(mkdtemp(f->dir));
    snprintf(f->staging, sizeof(f->staging), "%s/.bottomless", f->dir);
    snprintf(f->db_path, sizeof(f->db_path), "%s/app.db", f->dir);
    snprintf(f->wal_path, sizeof(f->wal_path), "%s/app.db-wal", f->dir);
    snprintf(f->target, sizeof(f->target), "%s/restored.db", f->dir);
    snprintf(f->bucket, sizeof(f->bucket), "repl-%s-%d-%ld", tag, (int)getpid(),
             (long)time(NULL) % 100000);
    s3_conf_init(&f->conf);
    f->conf.bucket = strdup(f->bucket);
    cr_assert_eq(s3_conf_resolve(&f->conf, &e), 0, "%s", e.msg);
    f->conf.max_attempts = 3;
    f->conf.backoff_max_ms = 200;
    f->s3 = s3_client_new(&f->conf, &e);
    cr_assert_not_null(f->s3, "%s", e.msg);
    cr_assert_eq(s3_ensure_bucket(f->s3, true, &e), 0, "%s", e.msg);
    /* Swift makes a new container visible to all its servers a little later: wait (with a
     * deadline) until a probe object can be written and listed. */
    int ok = 0;
    for (int i = 0; i < 100 && !ok; i++) {
        struct err pe = {0};
        struct s3_list_opts lo = {.prefix = "probe"};
        struct s3_list_page pg = {0};
        ok = s3_put_object(f->s3, "probe", "x", 1, &pe) == 0 &&
             s3_list_page(f->s3, &lo, NULL, &pg, &pe) == 0 && pg.n_objects == 1;
        s3_list_page_free(&pg);
        if (!ok)
            usleep(100 * 1000);
    }
    cr_assert(ok, "bucket %s never became usable", f->bucket);
    cr_assert_eq(s3_delete_object(f->s3, "probe", &e), 0, "%s", e.msg);
    shim_register();
}

/* After fork(): the child used (and may have died in the middle of using) the pooled
 * keep-alive connections it inherited from the parent's client; the parent must not read from
 * those sockets again, so it gets a fresh client. */
static void fx_reopen_s3(struct fx *f)
{
    struct err e = {0};
    s3_client_free(f->s3);
    f->s3 = s3_client_new(&f->conf, &e);
    cr_assert_not_null(f->s3, "%s", e.msg);
}

/* Starts the replicator with rc (staging_dir set here) and opens app.db in it. */
static void fx_start_conf(struct fx *f, struct repl_conf *rc)
{
    struct err e = {0};
    rc->staging_dir = f->staging;
    f->r = repl_new(rc, f->s3, &e);
    cr_assert_not_null(f->r, "%s", e.msg);
    cr_assert_eq(repl_start(f->r, &e), 0, "%s", e.msg);
    g_db = repl_db_open(f->r, "app.db", f->db_path, f->wal_path, &e);
    cr_assert_not_null(g_db, "%s", e.msg);
}

static void fx_start(struct fx *f, uint32_t interval_ms, uint32_t max_frames, bool durable)
{
    struct repl_conf rc;
    repl_conf_init(&rc);
    rc.batch_interval_ms = interval_ms;
    rc.batch_max_frames = max_frames;
    rc.durable = durable;
    rc.durable_timeout_ms = 20000;
    rc.snapshot_wal_min_mib = f->snapshot_wal_min_mib;
    fx_start_conf(f, &rc);
}

static void sql(sqlite3 *db, const char *q)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, q, NULL, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "%s: %s", q, msg ? msg : "");
    sqlite3_free(msg);
}

static sqlite3 *db_open_shim(const char *path)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                 "replvfs"),
                 SQLITE_OK);
    sql(db, "PRAGMA journal_mode=WAL");
    return db;
}

static void insert_rows(sqlite3 *db, int from, int n, int blob)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO t(id, v) VALUES(?, randomblob(?))", -1,
                                    &st, NULL),
                 SQLITE_OK);
    for (int i = from; i < from + n; i++) {
        sqlite3_bind_int(st, 1, i);
        sqlite3_bind_int(st, 2, blob);
        cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "%s", sqlite3_errmsg(db));
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
}

/* Content digest of table t: count and an FNV hash over every (id, v) in id order. */
static void digest(const char *path, const char *vfs, long *count, uint64_t *hash)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, vfs), SQLITE_OK, "%s", path);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT id, v FROM t ORDER BY id", -1, &st, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    uint64_t h = 1469598103934665603ull;
    long n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const uint8_t *p = sqlite3_column_blob(st, 1);
        int len = sqlite3_column_bytes(st, 1);
        for (int i = 0; i < 8; i++)
            h = (h ^ (uint8_t)(id >> (8 * i))) * 1099511628211ull;
        for (int i = 0; i < len; i++)
            h = (h ^ p[i]) * 1099511628211ull;
        n++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    *count = n;
    *hash = h;
}

static void restore_and_compare(struct fx *f, long want_rows)
{
    struct err e = {0};
    struct restore_opts o;
    struct restore_result res;
    restore_opts_init(&o);
    o.db_name = "app.db";
    o.target = f->target;
    o.strict = true;
    o.skip_integrity = true; /* checked below with our own connection */
    unlink(f->target);
    /* a client of its own, like the CLI would use */
    struct s3_client *rs3 = s3_client_new(&f->conf, &e);
    cr_assert_not_null(rs3, "%s", e.msg);
    int rrc = restore_run(rs3, &o, &res, &e);
    s3_client_free(rs3);
    cr_assert_eq(rrc, 0, "restore: rc=%d %s (%s)", rrc, e.msg, res.reason);
    cr_expect(!res.partial, "partial restore: %s", res.reason);
    sqlite3 *tdb = NULL;
    sqlite3_stmt *ist = NULL;
    cr_assert_eq(sqlite3_open_v2(f->target, &tdb, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(tdb, "PRAGMA integrity_check", -1, &ist, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(ist), SQLITE_ROW);
    cr_expect_str_eq((const char *)sqlite3_column_text(ist, 0), "ok");
    sqlite3_finalize(ist);
    sqlite3_close(tdb);
    long n1 = 0, n2 = 0;
    uint64_t h1 = 0, h2 = 0;
    digest(f->db_path, NULL, &n1, &h1);
    digest(f->target, NULL, &n2, &h2);
    cr_expect_eq(n1, want_rows, "source rows %ld want %ld", n1, want_rows);
    cr_expect_eq(n2, n1, "restored rows %ld source %ld", n2, n1);
    cr_expect_eq(h2, h1, "restored content differs from the source");
}

/* Batch keys of every generation: frame ranges start at 1, contiguous, never twice. */
static size_t check_batches(struct fx *f, size_t *n_gens_out, size_t *n_deps_out,
                            size_t *n_snaps_out)
{
    struct err e = {0};
    struct gen_id *ids = NULL;
    size_t n = 0, n_batches = 0, n_deps = 0, n_snaps = 0;
    cr_assert_eq(layout_list_generations(f->s3, "app.db", &ids, &n, &e), 0, "%s", e.msg);
    for (size_t i = 0; i < n; i++) {
        struct layout_objects objs = {0};
        cr_assert_eq(layout_list_gen_objects(f->s3, "app.db", &ids[i], &objs, &e), 0, "%s",
                     e.msg);
        uint32_t prev = 0;
        bool meta = false;
        for (size_t k = 0; k < objs.n; k++) {
            const char *leaf = strrchr(objs.v[k].key, '/') + 1;
            struct batch_name b;
            if (strcmp(leaf, ".meta") == 0)
                meta = true;
            if (strcmp(leaf, ".dep") == 0)
                n_deps++;
            if (strncmp(leaf, "db.", 3) == 0)
                n_snaps++;
            if (layout_batch_parse(leaf, &b) != 0)
                continue;
            cr_expect_eq(b.first, prev + 1, "gen %zu: batch %s after frame %u", i, leaf, prev);
            prev = b.last;
            n_batches++;
        }
        if (prev > 0)
            cr_expect(meta, "generation with batches but no .meta");
        layout_objects_free(&objs);
    }
    free(ids);
    if (n_gens_out)
        *n_gens_out = n;
    if (n_deps_out)
        *n_deps_out = n_deps;
    if (n_snaps_out)
        *n_snaps_out = n_snaps;
    return n_batches;
}

static void fx_finish(struct fx *f)
{
    g_db = NULL;
    repl_free(f->r);
    f->r = NULL;
    s3_client_free(f->s3);
    s3_conf_free(&f->conf);
    struct err e = {0};
    if (!getenv("BFS_KEEP_TMP"))
        fileio_rm_rf(f->dir, &e);
}

/* ---- tests with S3 ------------------------------------------------------------------------- */

Test(replicator, commits_reach_s3_and_restore_exactly, .timeout = 120)
{
    if (!have_s3()) {
        cr_skip_test("LIBSQL_BOTTOMLESS_ENDPOINT not set (run under tests/run-integration.sh)");
    }
    struct fx f;
    struct err e = {0};
    fx_init(&f, "basic");
    fx_start(&f, 200, 10000, false);
    sqlite3 *db = db_open_shim(f.db_path);
    sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    insert_rows(db, 1, 500, 100);
    cr_assert_eq(repl_flush(f.r, 30000, &e), 0, "%s", e.msg);
    struct repl_db_status st;
    repl_db_status(g_db, &st);
    cr_expect_eq(st.lag_s, 0.0);
    cr_expect_eq(st.last_uploaded_frame, st.last_committed_frame);
    cr_expect_gt(st.last_committed_frame, 500u);
    struct buf js;
    buf_init(&js, 1 << 20);
    cr_assert_eq(repl_status_json(f.r, &js), 0);
    cr_expect(strstr((char *)js.data, "\"db_name\": \"app.db\"") != NULL, "%s", js.data);
    buf_free(&js);
    restore_and_compare(&f, 500);
    size_t n_gens = 0, n_snaps = 0;
    size_t nb = check_batches(&f, &n_gens, NULL, &n_snaps);
    cr_expect_eq(n_gens, 1u);
    cr_expect_eq(n_snaps, 1u, "first generation has a snapshot");
    cr_expect_geq(nb, 1u);
    /* 500 commits in well under a few seconds at 200 ms batches: far fewer PUTs than commits */
    cr_expect_lt(nb, 100u, "batches %zu", nb);
    sqlite3_close(db);
    fx_finish(&f);
}

Test(replicator, checkpoints_make_generations_with_dep_and_exact_restore, .timeout = 180)
{
    if (!have_s3()) {
        cr_skip_test("LIBSQL_BOTTOMLESS_ENDPOINT not set");
    }
    struct fx f;
    struct err e = {0};
    fx_init(&f, "ckpt");
    fx_start(&f, 100, 10000, false);
    sqlite3 *db = db_open_shim(f.db_path);
    sql(db, "PRAGMA wal_autocheckpoint=40");
    sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    int id = 1;
    for (int round = 0; round < 6; round++) {
        sql(db, "BEGIN");
        insert_rows(db, id, 200, 300);
        sql(db, "COMMIT");
        id += 200;
        insert_rows(db, id, 50, 50);
        id += 50;
        if (round % 2 == 0)
            sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
        else if (round == 3)
            sql(db, "PRAGMA wal_checkpoint(RESTART)");
        else
            sql(db, "PRAGMA wal_checkpoint(FULL)");
    }
    insert_rows(db, id, 100, 20);
    id += 100;
    cr_assert_eq(repl_flush(f.r, 60000, &e), 0, "%s", e.msg);
    size_t n_gens = 0, n_deps = 0, n_snaps = 0;
    check_batches(&f, &n_gens, &n_deps, &n_snaps);
    cr_expect_geq(n_gens, 4u, "generations %zu", n_gens);
    cr_expect_eq(n_deps, n_gens - 1, "every generation but the first has a .dep");
    cr_expect_geq(n_snaps, 1u);
    restore_and_compare(&f, id - 1);
    sqlite3_close(db);
    fx_finish(&f);
}

Test(replicator, snapshots_are_exact_while_writes_and_checkpoints_continue, .timeout = 180)
{
    if (!have_s3()) {
        cr_skip_test("LIBSQL_BOTTOMLESS_ENDPOINT not set");
    }
    struct fx f;
    struct err e = {0};
    fx_init(&f, "snap");
    /* snapshot every generation: each restore of a generation starts from its snapshot */
    struct repl_conf rc;
    repl_conf_init(&rc);
    rc.batch_interval_ms = 100;
    rc.snapshot_max_gens = 1;
    fx_start_conf(&f, &rc);
    sqlite3 *db = db_open_shim(f.db_path);
    sql(db, "PRAGMA wal_autocheckpoint=0");
    sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    int id = 1;
    for (int round = 0; round < 5; round++) {
        insert_rows(db, id, 400, 1000); /* ~400 KB per round: snapshots take a while */
        id += 400;
        sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
        /* keep writing and checkpointing while the snapshot of the new generation runs */
        insert_rows(db, id, 100, 1000);
        id += 100;
        sql(db, "PRAGMA wal_checkpoint(PASSIVE)");
    }
    cr_assert_eq(repl_flush(f.r, 60000, &e), 0, "%s", e.msg);
    size_t n_gens = 0, n_snaps = 0;
    check_batches(&f, &n_gens, NULL, &n_snaps);
    cr_expect_geq(n_snaps, 3u, "snapshots %zu of %zu generations", n_snaps, n_gens);
    restore_and_compare(&f, id - 1);
    sqlite3_close(db);
    fx_finish(&f);
}

/* Generations of a small database under repeated checkpoints: with the default floor only
 * the first one takes a snapshot (the WAL shipped since stays far below 64 MiB although it is
 * many times the db size); without a floor the size rule snapshots again. Both restore. */
static size_t snapshots_with_floor(const char *name, uint32_t floor_mib)
{
    struct fx f;
    struct err e = {0};
    fx_init(&f, name);
    struct repl_conf rc;
    repl_conf_init(&rc);
    cr_expect_eq(rc.snapshot_wal_min_mib, 64u, "default floor");
    rc.batch_interval_ms = 100;
    rc.snapshot_max_gens = 1000;
    rc.snapshot_wal_min_mib = floor_mib;
    fx_start_conf(&f, &rc);
    sqlite3 *db = db_open_shim(f.db_path);
    sql(db, "PRAGMA wal_autocheckpoint=0");
    sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    for (int round = 0; round < 6; round++) {
        /* the same 50 rows rewritten: several times the ~60 KB db in WAL per generation */
        for (int k = 0; k < 4; k++) {
            sql(db, "DELETE FROM t");
            insert_rows(db, 1, 50, 1000);
        }
        sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
        cr_assert_eq(repl_flush(f.r, 60000, &e), 0, "%s", e.msg); /* snapshots settle */
    }
    sql(db, "DELETE FROM t");
    insert_rows(db, 1, 50, 1000);
    cr_assert_eq(repl_flush(f.r, 60000, &e), 0, "%s", e.msg);
    size_t n_gens = 0, n_snaps = 0;
    check_batches(&f, &n_gens, NULL, &n_snaps);
    cr_expect_geq(n_gens, 6u, "generations %zu", n_gens);
    restore_and_compare(&f, 50);
    sqlite3_close(db);
    fx_finish(&f);
    return n_snaps;
}

Test(replicator, snapshot_floor_spares_small_databases_a_snapshot_per_generation,
     .timeout = 240)
{
    if (!have_s3()) {
        cr_skip_test("LIBSQL_BOTTOMLESS_ENDPOINT not set");
    }
    size_t with_floor = snapshots_with_floor("floor", REPL_DEFAULT_SNAPSHOT_WAL_MIN_MIB);
    size_t without = snapshots_with_floor("nofloor", 0);
    cr_expect_eq(with_floor, 1u, "snapshots with the 64 MiB floor: %zu", with_floor);
    cr_expect_geq(without, 4u, "snapshots without a floor: %zu", without);
}

/* WAL restarts (automatic PASSIVE checkpoints every 20 pages, and RESTART ones) under many
 * small transactions; returns the generations in the bucket, after checking that the batches
 * are contiguous and that the restore (checksum chain verified) is exact. */
static size_t generations_over_restarts(const char *name, bool cont, uint32_t floor_mib,
                                        size_t *n_snaps)
{
    struct fx f;
    struct err e = {0};
    fx_init(&f, name);
    struct repl_conf rc;
    repl_conf_init(&rc);
    cr_expect(rc.continue_generations, "continuing is the default");
    rc.batch_interval_ms = 50;
    rc.continue_generations = cont;
    rc.snapshot_wal_min_mib = floor_mib;
    fx_start_conf(&f, &rc);
    sqlite3 *db = db_open_shim(f.db_path);
    sql(db, "PRAGMA wal_autocheckpoint=20");
    sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    for (int round = 0; round < 8; round++) {
        insert_rows(db, 1 + round * 60, 60, 700);
        sql(db, round % 3 == 1 ? "PRAGMA wal_checkpoint(RESTART)" : "UPDATE t SET v = v");
    }
    cr_assert_eq(repl_flush(f.r, 60000, &e), 0, "%s", e.msg);
    size_t n_gens = 0;
    check_batches(&f, &n_gens, NULL, n_snaps);
    restore_and_compare(&f, 8 * 60);
    sqlite3_close(db);
    fx_finish(&f);
    return n_gens;
}

Test(replicator, wal_restarts_continue_the_generation_unless_a_snapshot_is_due,
     .timeout = 240)
{
    if (!have_s3()) {
        cr_skip_test("LIBSQL_BOTTOMLESS_ENDPOINT not set");
    }
    size_t snaps = 0;
    size_t cont = generations_over_restarts("cont", true, REPL_DEFAULT_SNAPSHOT_WAL_MIN_MIB,
                                            &snaps);
    cr_expect_eq(cont, 1u, "generations over WAL restarts: %zu", cont);
    cr_expect_eq(snaps, 1u, "snapshots %zu", snaps);
    size_t each = generations_over_restarts("each", false, REPL_DEFAULT_SNAPSHOT_WAL_MIN_MIB,
                                            &snaps);
    cr_expect_geq(each, 8u, "generations, one per WAL: %zu", each);
    /* no floor: the WAL shipped soon exceeds the db size, and the size rule ends the
     * generation at a restart so that the next one starts from a snapshot */
    size_t sized = generations_over_restarts("sized", true, 0, &snaps);
    cr_expect_geq(sized, 2u, "generations with the size rule: %zu", sized);
    cr_expect_lt(sized, each, "generations with the size rule: %zu", sized);
    /* each of them starts one; a snapshot still running when the next generation wants its
     * own is abandoned (that generation restores through its parent), so at most one each */
    cr_expect_geq(snaps, 2u, "snapshots with the size rule: %zu", snaps);
    cr_expect_leq(snaps, sized, "snapshots %zu of %zu generations", snaps, sized);
}

/* Calls fn for every regular file under dir, recursively (names starting with "." included,
 * "." and ".." skipped). */
static void walk_files(const char *dir, void (*fn)(const char *path, const char *name,
                                                   const struct stat *sb, void *arg),
                       void *arg)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        char p[1024];
        struct stat sb;
        if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0 ||
            (size_t)snprintf(p, sizeof(p), "%s/%s", dir, nm) >= sizeof(p) || lstat(p, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode))
            walk_files(p, fn, arg);
        else
            fn(p, nm, &sb, arg);
    }
    closedir(d);
}

/* Runs child(f) in a forked process that then SIGKILLs itself (a crash right there), and
 * gives the parent's f a new S3 client (the child's connections died with it). */
static void fx_run_killed(struct fx *f, void (*child)(struct fx *))
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        child(f);
        raise(SIGKILL);
        _exit(3);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
    fx_reopen_s3(f);
}

/* Batches every 300 ms; the kill lands at a random moment of a write loop. */
static void write_3000_rows(struct fx *f)
{
    fx_start(f, 300, 50, false);
    sqlite3 *db = db_open_shim(f->db_path);
    sql(db, "PRAGMA synchronous=NORMAL");
    sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    for (int i = 1; i <= 3000; i++) {
        insert_rows(db, i, 1, 200);
        if (i == 1500)
            sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    }
}

Test(replicator, killed_writer_loses_nothing_and_uploads_once, .timeout = 180)
{
    if (!have_s3()) {
        cr_skip_test("LIBSQL_BOTTOMLESS_ENDPOINT not set");
    }
    struct fx f;
    struct err e = {0};
    fx_init(&f, "crash");
    fx_run_killed(&f, write_3000_rows);
    /* restart: the replicator finds the staging and the -wal and finishes the job */
    fx_start(&f, 300, 50, false);
    cr_assert_eq(repl_flush(f.r, 60000, &e), 0, "%s", e.msg);
    check_batches(&f, NULL, NULL, NULL);
    restore_and_compare(&f, 3000);
    fx_finish(&f);
}

static void add_merge_marker(const char *path, const char *name, const struct stat *sb,
                             void *arg)
{
    size_t l = strlen(name);
    (void)path;
    (void)sb;
    if (l > 6 && strcmp(name + l - 6, ".merge") == 0)
        (*(int *)arg)++;
}

/* Merge markers (<gen>/<first>-<last>-<ts>.merge) under dir. */
static int merge_markers(const char *dir)
{
    int n = 0;
    walk_files(dir, add_merge_marker, &n);
    return n;
}

/* Single-row commits with a checkpoint every 16 pages: a WAL restart, and so a staged
 * segment, every ~16 commits (n rows: about n / 16 segments). */
static void insert_with_restarts(sqlite3 *db, int n)
{
    sql(db, "PRAGMA synchronous=NORMAL");
    sql(db, "PRAGMA wal_autocheckpoint=16");
    sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    insert_rows(db, 1, n, 100);
}

/* A WAL restart cuts a segment; under load that is many a second, but a batch goes up at most
 * once per batch interval: the segments cut within one interval are sent as one object. */
Test(replicator, wal_restarts_under_load_make_one_batch_per_interval, .timeout = 120)
{
    if (!have_s3()) {
        cr_skip_test("LIBSQL_BOTTOMLESS_ENDPOINT not set");
    }
    struct fx f;
    struct err e = {0};
    fx_init(&f, "merge");
    fx_start(&f, 1000, 10000, false);
    sqlite3 *db = db_open_shim(f.db_path);
    time_t t0 = time(NULL);
    insert_with_restarts(db, 2000);
    time_t t1 = time(NULL);
    cr_assert_eq(repl_flush(f.r, 60000, &e), 0, "%s", e.msg);
    struct repl_db_status st;
    repl_db_status(g_db, &st);
    size_t n_gens = 0;
    size_t n = check_batches(&f, &n_gens, NULL, NULL);
    cr_expect_eq(n_gens, 1u, "generations %zu", n_gens);
    cr_expect_geq(st.last_uploaded_frame, 2000u, "frames %u", st.last_uploaded_frame);
    /* ~125 segments were cut; one batch per started second of writing, one for the flush */
    cr_expect_leq(n, (size_t)(t1 - t0) + 2, "%zu batches for %ld s of writes", n,
                  (long)(t1 - t0));
    cr_expect_eq(merge_markers(f.staging), 0, "a merge marker is left after the flush");
    restore_and_compare(&f, 2000);
    sqlite3_close(db);
    fx_finish(&f);
}

/* Writes with WAL restarts and returns as soon as a merge marker appears: the kill must land
 * right at it. */
static void write_until_a_merge(struct fx *f)
{
    fx_start(f, 1000, 10000, false);
    sqlite3 *db = db_open_shim(f->db_path);
    insert_with_restarts(db, 1500);
    for (int i = 0; i < 20000 && merge_markers(f->staging) == 0; i++)
        usleep(500); /* polled */
}

/* Killed while (or just after) a merged batch goes up: the restart sends the same range under
 * the same key again (its marker), never an overlapping one, and the bucket restores exactly. */
Test(replicator, killed_during_a_merged_upload_resends_the_same_batch, .timeout = 180)
{
    if (!have_s3()) {
        cr_skip_test("LIBSQL_BOTTOMLESS_ENDPOINT not set");
    }
    struct fx f;
    struct err e = {0};
    fx_init(&f, "mergekill");
    fx_run_killed(&f, write_until_a_merge);
    cr_expect_eq(merge_markers(f.staging), 1, "the child was killed before any merge");
    fx_start(&f, 1000, 10000, false);
    cr_assert_eq(repl_flush(f.r, 60000, &e), 0, "%s", e.msg);
    cr_expect_eq(merge_markers(f.staging), 0, "a merge marker is left after the flush");
    check_batches(&f, NULL, NULL, NULL); /* contiguous, no overlap */
    restore_and_compare(&f, 1500);
    fx_finish(&f);
}

Test(replicator, durable_fsync_returns_after_the_batch_is_in_s3, .timeout = 120)
{
    if (!have_s3()) {
        cr_skip_test("LIBSQL_BOTTOMLESS_ENDPOINT not set");
    }
    struct fx f;
    fx_init(&f, "durable");
    fx_start(&f, 5000, 10000, true); /* long interval: only the fsync can make it upload */
    sqlite3 *db = db_open_shim(f.db_path);
    sql(db, "PRAGMA synchronous=FULL");
    sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    for (int i = 1; i <= 5; i++) {
        insert_rows(db, i, 1, 10);
        struct repl_db_status st;
        repl_db_status(g_db, &st);
        cr_expect_eq(st.last_uploaded_frame, st.last_committed_frame, "commit %d", i);
    }
    restore_and_compare(&f, 5);
    sqlite3_close(db);
    fx_finish(&f);
}

Test(replicator, deleting_the_database_writes_a_tombstone, .timeout = 120)
{
    if (!have_s3()) {
        cr_skip_test("LIBSQL_BOTTOMLESS_ENDPOINT not set");
    }
    struct fx f;
    struct err e = {0};
    fx_init(&f, "tomb");
    fx_start(&f, 100, 10000, false);
    sqlite3 *db = db_open_shim(f.db_path);
    sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    insert_rows(db, 1, 10, 10);
    cr_assert_eq(repl_flush(f.r, 30000, &e), 0, "%s", e.msg);
    sqlite3_close(db);
    struct repl_db *d = g_db;
    g_db = NULL;
    unlink(f.db_path);
    repl_db_unlinked(d);
    cr_assert_eq(repl_flush(f.r, 30000, &e), 0, "%s", e.msg);
    int64_t ts = 0;
    cr_assert_eq(layout_read_tombstone(f.s3, "app.db", &ts, &e), 0, "%s", e.msg);
    cr_expect_geq(ts, (int64_t)time(NULL) - 60);
    fx_finish(&f);
}

/* Restores generation gen (NULL: newest) into f->target, checks integrity, digests table t. */
static void restore_gen_digest(struct fx *f, const struct gen_id *gen, long *count,
                               uint64_t *hash, struct restore_result *res)
{
    struct err e = {0};
    struct restore_opts o;
    restore_opts_init(&o);
    o.db_name = "app.db";
    o.target = f->target;
    o.gen = gen;
    o.strict = true;
    o.skip_integrity = true; /* checked below: a corrupt result must fail this test */
    unlink(f->target);
    struct s3_client *rs3 = s3_client_new(&f->conf, &e);
    cr_assert_not_null(rs3, "%s", e.msg);
    int rrc = restore_run(rs3, &o, res, &e);
    s3_client_free(rs3);
    cr_assert_eq(rrc, 0, "restore: rc=%d %s (%s)", rrc, e.msg, res->reason);
    sqlite3 *tdb = NULL;
    sqlite3_stmt *ist = NULL;
    cr_assert_eq(sqlite3_open_v2(f->target, &tdb, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(tdb, "PRAGMA integrity_check", -1, &ist, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(ist), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(ist, 0), "ok");
    sqlite3_finalize(ist);
    sqlite3_close(tdb);
    digest(f->target, NULL, count, hash);
}

static bool gen_has_snapshot(struct fx *f, const struct gen_id *g)
{
    struct err e = {0};
    struct layout_objects objs = {0};
    cr_assert_eq(layout_list_gen_objects(f->s3, "app.db", g, &objs, &e), 0, "%s", e.msg);
    bool snap = false;
    for (size_t k = 0; k < objs.n; k++)
        snap |= strncmp(strrchr(objs.v[k].key, '/') + 1, "db.", 3) == 0;
    layout_objects_free(&objs);
    return snap;
}

/* The crash of the daemon with a snapshot in progress, deterministically: phase A (child)
 * replicates two generations with their snapshots. Phase B (same child) reopens the
 * replicator WITHOUT its threads (nothing uploaded, no state saved: as if SIGKILLed right
 * after), starts generation B1 whose snapshot begins (copy-on-write running), changes the db
 * file through checkpoints (the copy-on-write side file holds the old pages), starts B2 and
 * dies with _exit. Phase C (parent) reopens: the state names A2, the -wal is B2's, B1's
 * copy-on-write data is gone. The bucket must then restore exactly: B1's snapshot is never
 * uploaded, the new generation has a snapshot of the db file (it cannot chain to A2: B1's
 * frames were checkpointed into the file), and B1 / B2 restore through their .dep chains. */
Test(replicator, interrupted_snapshot_after_restart_restores_exactly, .timeout = 180)
{
    if (!have_s3()) {
        cr_skip_test("LIBSQL_BOTTOMLESS_ENDPOINT not set");
    }
    struct fx f;
    struct err e = {0};
    fx_init(&f, "isnap");
    f.snapshot_wal_min_mib = 0; /* small WAL amounts trigger snapshots here */
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        fx_start(&f, 100, 10000, false);
        sqlite3 *db = db_open_shim(f.db_path);
        sql(db, "PRAGMA wal_autocheckpoint=0");
        sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
        insert_rows(db, 1, 100, 1000);         /* A1 (first generation: snapshot) */
        sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
        insert_rows(db, 101, 1, 1000);         /* A2: snapshot (WAL shipped > db size) */
        if (repl_flush(f.r, 60000, &e) != 0)
            _exit(10);
        repl_free(f.r);
        /* phase B: no threads */
        struct repl_conf rc;
        repl_conf_init(&rc);
        rc.staging_dir = f.staging;
        rc.snapshot_wal_min_mib = 0;
        f.r = repl_new(&rc, f.s3, &e);
        if (!f.r)
            _exit(11);
        g_db = repl_db_open(f.r, "app.db", f.db_path, f.wal_path, &e);
        if (!g_db)
            _exit(12);
        sql(db, "BEGIN");
        insert_rows(db, 102, 300, 1000);       /* A2 grows: B1 will want a snapshot */
        sql(db, "COMMIT");
        sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
        insert_rows(db, 402, 20, 1000);        /* B1 starts, its snapshot begins */
        struct repl_db_status st;
        repl_db_status(g_db, &st);
        if (!st.snapshot_pending)
            _exit(13);
        insert_rows(db, 422, 200, 1000);
        sql(db, "PRAGMA wal_checkpoint(PASSIVE)"); /* db file changes under the snapshot */
        sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
        insert_rows(db, 622, 30, 1000);        /* B2 (no snapshot of its own) */
        insert_rows(db, 652, 10, 1000);
        _exit(0);                              /* crash: no flush, no state save */
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    fx_reopen_s3(&f);

    fx_start(&f, 100, 10000, false);
    cr_assert_eq(repl_flush(f.r, 60000, &e), 0, "%s", e.msg);
    long n_src = 0, n_got = 0;
    uint64_t h_src = 0, h_got = 0;
    struct restore_result res;
    digest(f.db_path, NULL, &n_src, &h_src);
    cr_assert_eq(n_src, 661);
    restore_gen_digest(&f, NULL, &n_got, &h_got, &res); /* newest */
    cr_expect_eq(n_got, n_src, "newest: rows %ld of %ld", n_got, n_src);
    cr_expect_eq(h_got, h_src, "newest: content differs from the source");
    struct gen_id *ids = NULL;
    size_t n = 0;
    cr_assert_eq(layout_list_generations(f.s3, "app.db", &ids, &n, &e), 0, "%s", e.msg);
    cr_assert_eq(n, 5u, "generations %zu (want A1 A2 B1 B2 and the restarted one)", n);
    /* newest first: R, B2, B1, A2, A1 */
    cr_expect(gen_has_snapshot(&f, &ids[0]), "the restarted generation has no snapshot");
    cr_expect(!gen_has_snapshot(&f, &ids[2]), "B1's interrupted snapshot was uploaded");
    cr_expect(gen_has_snapshot(&f, &ids[3]) && gen_has_snapshot(&f, &ids[4]));
    cr_expect(res.has_snapshot && gen_id_eq(&res.snapshot_gen, &ids[0]));
    /* B1 and B2 have no snapshot: A2's + the batches of A2, B1 (B2's frames were not staged
     * before the crash: they went to the restarted generation, B2 ends where B1 does). */
    long n_b1 = 0;
    uint64_t h_b1 = 0;
    restore_gen_digest(&f, &ids[2], &n_b1, &h_b1, &res); /* B1 */
    cr_expect_eq(n_b1, 621, "B1: rows %ld of 621", n_b1);
    cr_expect(res.has_snapshot && gen_id_eq(&res.snapshot_gen, &ids[3]));
    restore_gen_digest(&f, &ids[1], &n_got, &h_got, &res); /* B2 */
    cr_expect_eq(n_got, 621, "B2: rows %ld of 621", n_got);
    cr_expect_eq(h_got, h_b1, "B2 differs from B1 (no frames of its own in the bucket)");
    cr_expect(res.has_snapshot && gen_id_eq(&res.snapshot_gen, &ids[3]));
    free(ids);
    fx_finish(&f);
}

struct leftovers {
    size_t n;
    char *out;
    size_t cap;
};

static void add_leftover(const char *path, const char *name, const struct stat *sb, void *arg)
{
    struct leftovers *lo = arg;
    size_t l = strlen(name);
    (void)sb;
    bool pending = strcmp(name, ".meta") == 0 || strcmp(name, ".dep") == 0 ||
                   strcmp(name, "tombstone") == 0 || strncmp(name, "db.", 3) == 0 ||
                   (l > 4 && strcmp(name + l - 4, ".seg") == 0);
    if (!pending)
        return;
    lo->n++;
    size_t used = strlen(lo->out);
    snprintf(lo->out + used, lo->cap - used, "%s\n", path);
}

/* Pending objects left in the staging area (segments, .meta, .dep, snapshots, tombstone)
 * under dir, recursively: their paths appended to out (one per line). Returns how many. */
static size_t staged_leftovers(const char *dir, char *out, size_t cap)
{
    struct leftovers lo = {0, out, cap};
    walk_files(dir, add_leftover, &lo);
    return lo.n;
}

/* A new local database whose name already has a generation in the bucket, with two local
 * generations staged before the first upload (the uploaders start late: S3 slow or down at
 * mount). The bucket check restarts the open generation from frame 1 under a new one: the
 * objects it dropped from the queue must not stay in staging, and repl_flush may only report
 * success when nothing of any generation is left there. Regression: the first generations'
 * .meta/.dep/batches stayed staged through a "successful" flush and were uploaded at the next
 * start. */
Test(replicator, flush_leaves_nothing_staged_after_the_bucket_check_restarts, .timeout = 180)
{
    if (!have_s3()) {
        cr_skip_test("LIBSQL_BOTTOMLESS_ENDPOINT not set");
    }
    struct fx f;
    struct err e = {0};
    fx_init(&f, "flushall");
    /* a foreign generation of app.db in the bucket */
    struct gen_id foreign;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    now.tv_sec -= 3600;
    cr_assert_eq(gen_id_new(&now, &foreign, &e), 0, "%s", e.msg);
    char key[LAYOUT_KEY_MAX];
    uint8_t meta[LAYOUT_META_BYTES];
    struct gen_meta gm = {.page_size = 4096, .cksum1 = 1, .cksum2 = 2};
    layout_meta_encode(&gm, meta);
    cr_assert_eq(layout_key_meta("app.db", &foreign, key), 0);
    cr_assert_eq(s3_put_object(f.s3, key, meta, sizeof(meta), &e), 0, "%s", e.msg);

    /* replicator without threads yet: two generations staged locally */
    struct repl_conf rc;
    repl_conf_init(&rc);
    rc.staging_dir = f.staging;
    rc.batch_interval_ms = 100;
    f.r = repl_new(&rc, f.s3, &e);
    cr_assert_not_null(f.r, "%s", e.msg);
    g_db = repl_db_open(f.r, "app.db", f.db_path, f.wal_path, &e);
    cr_assert_not_null(g_db, "%s", e.msg);
    sqlite3 *db = db_open_shim(f.db_path);
    sql(db, "PRAGMA wal_autocheckpoint=0");
    sql(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    insert_rows(db, 1, 20, 100);
    sql(db, "PRAGMA wal_checkpoint(TRUNCATE)"); /* stages generation 1, starts 2 */
    insert_rows(db, 21, 20, 100);
    cr_assert_eq(repl_start(f.r, &e), 0, "%s", e.msg);
    insert_rows(db, 41, 5, 100);
    cr_assert_eq(repl_flush(f.r, 60000, &e), 0, "%s", e.msg);
    char left[4096] = "";
    size_t n_left = staged_leftovers(f.staging, left, sizeof(left));
    cr_expect_eq(n_left, 0u, "repl_flush returned 0 with %zu objects still staged:\n%s", n_left,
                 left);
    sqlite3_close(db);
    restore_and_compare(&f, 45);
    fx_finish(&f);
}

/* ---- pure tests ---------------------------------------------------------------------------- */

Test(replstate, flags_round_trip)
{
    uint8_t rec[REPLSTATE_BYTES];
    struct replstate s = {0}, got;
    struct err e = {0};
    for (unsigned bits = 0; bits < 16; bits++) {
        s.has_gen = bits & 1;
        s.gen_open = bits & 2;
        s.snap_pending = bits & 4;
        s.changed_outside = bits & 8;
        replstate_encode(&s, rec);
        cr_assert_eq(replstate_decode(rec, sizeof(rec), &got, &e), 0, "%s", e.msg);
        cr_expect(got.has_gen == s.has_gen && got.gen_open == s.gen_open &&
                      got.snap_pending == s.snap_pending &&
                      got.changed_outside == s.changed_outside,
                  "flags %u", bits);
    }
}

Test(replstate, torn_slot_is_detected_and_the_other_used)
{
    char dir[] = "/tmp/bfs-replstate-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    struct replstate s = {0}, got;
    struct err e = {0};
    bool torn = true;
    s.has_gen = true;
    s.uploaded = 10;
    cr_assert_eq(replstate_save(dir, &s, &e), 0, "%s", e.msg);
    s.uploaded = 20;
    cr_assert_eq(replstate_save(dir, &s, &e), 0, "%s", e.msg);
    cr_assert_eq(replstate_load(dir, &got, &torn, &e), 0, "%s", e.msg);
    cr_expect_eq(got.uploaded, 20u);
    cr_expect(!torn);
    /* tear the newest slot (seq 2 -> state.0): half a record */
    char p[128];
    snprintf(p, sizeof(p), "%s/state.0", dir);
    int fd = open(p, O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(ftruncate(fd, 40), 0);
    close(fd);
    cr_assert_eq(replstate_load(dir, &got, &torn, &e), 0, "%s", e.msg);
    cr_expect(torn);
    cr_expect_eq(got.uploaded, 10u, "falls back to the previous record");
    /* a flipped bit is caught by the CRC too */
    snprintf(p, sizeof(p), "%s/state.1", dir);
    uint8_t *data = NULL;
    size_t len = 0;
    cr_assert_eq(fileio_read_file(p, 4096, &data, &len, &e), 0);
    data[57] ^= 1;
    cr_expect_eq(replstate_decode(data, len, &got, &e), EBADMSG);
    free(data);
    fileio_rm_rf(dir, &e);
}

Test(snapshot, image_is_the_state_at_start_despite_later_writes)
{
    char dir[] = "/tmp/bfs-snaptest-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char db[128], cow[128];
    snprintf(db, sizeof(db), "%s/db", dir);
    snprintf(cow, sizeof(cow), "%s/cow", dir);
    enum { N = 64 * 4096 };
    uint8_t *orig = malloc(N), *img = malloc(N), *chunk = malloc(8192);
    for (size_t i = 0; i < N; i++)
        orig[i] = (uint8_t)(i * 7 + i / 4096);
    int fd = open(db, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_eq(fileio_pwrite_all(fd, orig, N, 0), 0);
    struct err e = {0};
    struct snapshot *s = snapshot_new(db, N, cow, &e);
    cr_assert_not_null(s, "%s", e.msg);
    size_t pos = 0, n = 0;
    uint8_t junk[4096];
    memset(junk, 0xee, sizeof(junk));
    for (int step = 0; step < 64; step++) {
        /* the app overwrites pages ahead of and behind the reader, then shrinks the file */
        uint64_t off = (uint64_t)((step * 13) % 64) * 4096;
        cr_assert_eq(snapshot_cow(s, off, 4096, &e), 0, "%s", e.msg);
        cr_assert_eq(fileio_pwrite_all(fd, junk, 4096, off), 0);
        if (step == 40) {
            cr_assert_eq(snapshot_cow(s, 50 * 4096, N - 50 * 4096, &e), 0);
            cr_assert_eq(ftruncate(fd, 50 * 4096), 0);
        }
        if (pos < N) {
            cr_assert_eq(snapshot_read(s, chunk, 8192, &n, &e), 0, "%s", e.msg);
            memcpy(img + pos, chunk, n);
            pos += n;
        }
    }
    while (pos < N) {
        cr_assert_eq(snapshot_read(s, chunk, 8192, &n, &e), 0, "%s", e.msg);
        cr_assert_gt(n, 0u);
        memcpy(img + pos, chunk, n);
        pos += n;
    }
    cr_assert_eq(snapshot_read(s, chunk, 8192, &n, &e), 0);
    cr_expect_eq(n, 0u);
    cr_expect_eq(memcmp(img, orig, N), 0, "image differs from the file at the start");
    cr_expect_gt(snapshot_cow_units(s), 0u);
    snapshot_free(s);
    close(fd);
    free(orig);
    free(img);
    free(chunk);
    fileio_rm_rf(dir, &e);
}
