/* tests/tools/mkbucket.c - writes ONE bottomless generation of a real SQLite database into a
 * bucket, so restore can be tested end to end without the replicator.
 *
 *   mkbucket -b BUCKET -n DB_NAME -D DBFILE [options] [SQLFILE...]
 *
 * Steps: open DBFILE (created if missing) in WAL mode with autocheckpoint off; TRUNCATE
 * checkpoint (the main file is now the generation-start state); upload it as the snapshot
 * (db.<ext> + .changecounter) unless --no-snapshot; run each SQLFILE (its statements, in
 * their own transactions unless the file has BEGIN/COMMIT); after each file, optionally
 * VACUUM INTO <state-dir>/state-<i>.db (the logical state after that file, for comparison
 * with .sha3sum); then cut the real -wal file into batches at commit boundaries (one batch per
 * SQLFILE, or one per transaction with --batch-per-txn) named with ts = --ts + i*--ts-step,
 * upload .meta and .dep (--parent), checkpoint TRUNCATE and close. Prints the generation id.
 * Options:
 *   -c zstd|gz|raw     compression of the snapshot and batches (default zstd)
 *   --created SECS     creation time in the generation id (default now)
 *   --parent GEN       write .dep -> GEN
 *   --no-snapshot      no db.* / .changecounter
 *   --no-meta          no .meta
 *   --legacy-names     batch names "<first>-<last>.<ext>" (old bottomless)
 *   --ts SECS --ts-step SECS   batch timestamps (default now, 0)
 *   --batch-per-txn    one batch per transaction instead of per SQL file
 *   --state-dir DIR    VACUUM INTO DIR/state-<i>.db after SQL file i (1-based)
 *   --page-size N      PRAGMA page_size for a new database
 *   --cache-size N     PRAGMA cache_size (small values make SQLite spill mid-transaction)
 * Environment: LIBSQL_BOTTOMLESS_ENDPOINT, LIBSQL_BOTTOMLESS_AWS_* (s3_conf_resolve). */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "s3/s3.h"
#include "wal/layout.h"
#include "wal/restore.h"
#include "wal/walfmt.h"

static void die(const char *what, const struct err *e)
{
    fprintf(stderr, "mkbucket: %s: %s\n", what, e && e->msg[0] ? e->msg : "failed");
    exit(1);
}

static void exec_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "mkbucket: sql error: %s\n  in: %.200s\n", msg ? msg : "?", sql);
        exit(1);
    }
}

/* Last frame of the committed prefix of the -wal (checksum chain + salts valid) and, in
 * commits[], the commit frame numbers after from (exclusive). */
struct walscan {
    uint32_t page_size;
    uint32_t n_commits;
    uint32_t *commits;
    uint32_t cap;
    struct wal_header h;
};

static void scan_wal(const char *path, struct walscan *ws)
{
    uint8_t *w = NULL;
    size_t len = 0;
    struct err e = {0};

    ws->n_commits = 0;
    if (fileio_read_file(path, (size_t)1 << 34, &w, &len, &e))
        die("read -wal", &e);
    if (len < WAL_HEADER_BYTES) {
        free(w);
        ws->page_size = 0;
        return;
    }
    if (wal_header_parse(w, &ws->h, &e))
        die("wal header", &e);
    ws->page_size = ws->h.page_size;
    uint32_t s[2] = {ws->h.cksum1, ws->h.cksum2};
    size_t fs = WAL_FRAME_HEADER_BYTES + ws->page_size;
    for (uint32_t n = 1;; n++) {
        uint64_t off = wal_frame_offset(ws->page_size, n);
        if (off + fs > len)
            break;
        struct wal_frame_header fh;
        wal_frame_header_parse(w + off, &fh);
        if (fh.salt1 != ws->h.salt1 || fh.salt2 != ws->h.salt2 ||
            !wal_frame_checksum_ok(ws->h.big_endian, w + off, w + off + 24, ws->page_size, s))
            break;
        if (fh.db_pages) {
            if (ws->n_commits == ws->cap) {
                ws->cap = ws->cap ? ws->cap * 2 : 64;
                ws->commits = realloc(ws->commits, ws->cap * sizeof(*ws->commits));
                if (!ws->commits)
                    die("oom", NULL);
            }
            ws->commits[ws->n_commits++] = n;
        }
    }
    free(w);
}

static void upload_batch(struct s3_client *c, const char *db, const struct gen_id *gen,
                         const char *walpath, uint32_t page_size, uint32_t first, uint32_t last,
                         uint64_t ts, enum compression comp, bool legacy)
{
    char key[LAYOUT_KEY_MAX];
    struct err e = {0};
    struct buf body, z;
    size_t fs = WAL_FRAME_HEADER_BYTES + page_size;
    size_t n = (size_t)(last - first + 1) * fs;
    uint8_t *w = NULL;
    size_t len = 0;

    if (fileio_read_file(walpath, (size_t)1 << 34, &w, &len, &e))
        die("read -wal", &e);
    uint64_t off = wal_frame_offset(page_size, first);
    if (off + n > len)
        die("batch beyond -wal end", NULL);
    buf_init(&body, (size_t)1 << 34);
    buf_init(&z, (size_t)1 << 34);
    if (buf_append(&body, w + off, n))
        die("oom", NULL);
    free(w);
    if (compress_buf(comp, 0, body.data, body.len, &z, &e))
        die("compress", &e);
    if (legacy) {
        char g[GEN_ID_STR_LEN + 1];
        gen_id_format(gen, g);
        snprintf(key, sizeof(key), "%s-%s/%012u-%012u.%s", db, g, first, last,
                 compression_ext(comp));
    } else if (layout_key_batch(db, gen, first, last, ts, comp, key)) {
        die("batch key", NULL);
    }
    if (s3_put_object(c, key, z.data, z.len, &e))
        die("put batch", &e);
    fprintf(stderr, "mkbucket: %s (%zu frames, %zu bytes)\n", key, (size_t)(last - first + 1),
            z.len);
    buf_free(&body);
    buf_free(&z);
}

int main(int argc, char **argv)
{
    enum { O_CREATED = 1000, O_PARENT, O_NOSNAP, O_NOMETA, O_LEGACY, O_TS, O_TSSTEP, O_PERTXN,
           O_STATE, O_PAGESIZE, O_CACHE };
    static const struct option opts[] = {
        {"bucket", required_argument, NULL, 'b'},     {"name", required_argument, NULL, 'n'},
        {"db", required_argument, NULL, 'D'},         {"compression", required_argument, NULL, 'c'},
        {"created", required_argument, NULL, O_CREATED}, {"parent", required_argument, NULL, O_PARENT},
        {"no-snapshot", no_argument, NULL, O_NOSNAP}, {"no-meta", no_argument, NULL, O_NOMETA},
        {"legacy-names", no_argument, NULL, O_LEGACY}, {"ts", required_argument, NULL, O_TS},
        {"ts-step", required_argument, NULL, O_TSSTEP}, {"batch-per-txn", no_argument, NULL, O_PERTXN},
        {"state-dir", required_argument, NULL, O_STATE}, {"page-size", required_argument, NULL, O_PAGESIZE},
        {"cache-size", required_argument, NULL, O_CACHE}, {NULL, 0, NULL, 0}};
    const char *bucket = NULL, *dbname = NULL, *dbfile = NULL, *state_dir = NULL;
    enum compression comp = COMP_ZSTD;
    bool snapshot = true, meta = true, legacy = false, per_txn = false, has_parent = false;
    struct gen_id parent;
    int64_t created = time(NULL);
    uint64_t ts = (uint64_t)time(NULL), ts_step = 0;
    long page_size = 0, cache_size = 0;
    struct err e = {0};
    int opt;

    while ((opt = getopt_long(argc, argv, "b:n:D:c:", opts, NULL)) != -1) {
        switch (opt) {
        case 'b': bucket = optarg; break;
        case 'n': dbname = optarg; break;
        case 'D': dbfile = optarg; break;
        case 'c':
            if (compression_parse(optarg, &comp)) {
                fprintf(stderr, "mkbucket: bad compression %s\n", optarg);
                return 2;
            }
            break;
        case O_CREATED: created = strtoll(optarg, NULL, 10); break;
        case O_PARENT:
            if (gen_id_parse(optarg, strlen(optarg), &parent, &e))
                die("--parent", &e);
            has_parent = true;
            break;
        case O_NOSNAP: snapshot = false; break;
        case O_NOMETA: meta = false; break;
        case O_LEGACY: legacy = true; break;
        case O_TS: ts = strtoull(optarg, NULL, 10); break;
        case O_TSSTEP: ts_step = strtoull(optarg, NULL, 10); break;
        case O_PERTXN: per_txn = true; break;
        case O_STATE: state_dir = optarg; break;
        case O_PAGESIZE: page_size = strtol(optarg, NULL, 10); break;
        case O_CACHE: cache_size = strtol(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: mkbucket -b BUCKET -n DB_NAME -D DBFILE [options] [SQL...]\n");
            return 2;
        }
    }
    if (!bucket || !dbname || !dbfile) {
        fprintf(stderr, "usage: mkbucket -b BUCKET -n DB_NAME -D DBFILE [options] [SQL...]\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct s3_conf conf;
    s3_conf_init(&conf);
    conf.bucket = strdup(bucket);
    if (s3_conf_resolve(&conf, &e))
        die("s3 config", &e);
    struct s3_client *c = s3_client_new(&conf, &e);
    if (!c)
        die("s3 client", &e);
    if (s3_ensure_bucket(c, true, &e))
        die("bucket", &e);

    struct gen_id gen;
    struct timespec now = {.tv_sec = created, .tv_nsec = 0};
    if (gen_id_new(&now, &gen, &e))
        die("gen id", &e);

    sqlite3 *db;
    char sql[512], walpath[4096];
    snprintf(walpath, sizeof(walpath), "%s-wal", dbfile);
    if (sqlite3_open(dbfile, &db) != SQLITE_OK)
        die("open db", NULL);
    if (page_size) {
        snprintf(sql, sizeof(sql), "PRAGMA page_size=%ld", page_size);
        exec_sql(db, sql);
    }
    exec_sql(db, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0");
    if (cache_size) {
        snprintf(sql, sizeof(sql), "PRAGMA cache_size=%ld", cache_size);
        exec_sql(db, sql);
    }
    exec_sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");

    if (snapshot) {
        if (restore_upload_snapshot(c, dbname, &gen, dbfile, comp, &e))
            die("snapshot", &e);
    }

    struct walscan ws = {0};
    uint32_t done = 0; /* last frame already uploaded */
    for (int i = optind; i < argc; i++) {
        uint8_t *script = NULL;
        size_t len = 0;
        if (fileio_read_file(argv[i], 1u << 26, &script, &len, &e))
            die(argv[i], &e);
        exec_sql(db, (const char *)script);
        free(script);
        int idx = i - optind + 1;
        if (state_dir) {
            snprintf(sql, sizeof(sql), "VACUUM INTO '%s/state-%d.db'", state_dir, idx);
            exec_sql(db, sql);
        }
        scan_wal(walpath, &ws);
        if (ws.n_commits == 0)
            continue;
        uint64_t bts = ts + (uint64_t)(idx - 1) * ts_step;
        uint32_t first = done + 1;
        for (uint32_t k = 0; k < ws.n_commits; k++) {
            uint32_t cf = ws.commits[k];
            if (cf <= done)
                continue;
            if (per_txn || k == ws.n_commits - 1) {
                upload_batch(c, dbname, &gen, walpath, ws.page_size, first, cf, bts, comp, legacy);
                first = cf + 1;
                done = cf;
            }
        }
    }
    if (meta && ws.page_size) {
        struct gen_meta m = {.page_size = ws.page_size, .cksum1 = ws.h.cksum1, .cksum2 = ws.h.cksum2};
        uint8_t b[LAYOUT_META_BYTES];
        char key[LAYOUT_KEY_MAX];
        layout_meta_encode(&m, b);
        layout_key_meta(dbname, &gen, key);
        if (s3_put_object(c, key, b, sizeof(b), &e))
            die("put .meta", &e);
    }
    if (has_parent) {
        uint8_t b[LAYOUT_DEP_BYTES];
        char key[LAYOUT_KEY_MAX];
        layout_dep_encode(&parent, b);
        layout_key_dep(dbname, &gen, key);
        if (s3_put_object(c, key, b, sizeof(b), &e))
            die("put .dep", &e);
    }
    exec_sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    sqlite3_close(db);
    free(ws.commits);

    char g[GEN_ID_STR_LEN + 1];
    gen_id_format(&gen, g);
    printf("%s\n", g);
    s3_client_free(c);
    s3_conf_free(&conf);
    curl_global_cleanup();
    return 0;
}
