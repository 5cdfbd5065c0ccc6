/* tests/unit/test_restore_replay.c - replay of real SQLite WAL frames into a copy of the main
 * file must give byte-for-byte the checkpointed file; corruption stops at the last complete
 * transaction. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "wal/restore_replay.h"
#include "wal/walfmt.h"

struct fixture {
    char dir[64];
    char db[128];
    uint8_t *base; /* main file before the WAL */
    size_t base_len;
    uint8_t *wal;
    size_t wal_len;
    uint8_t *final; /* main file after checkpoint */
    size_t final_len;
    uint32_t page_size;
    uint32_t commits[64]; /* commit frame numbers */
    int n_commits;
};

static void exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql, msg);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *p = NULL;
    cr_assert_eq(fileio_read_file(path, 1u << 30, &p, len, NULL), 0, "read %s", path);
    return p;
}

/* A fresh database in a new temp dir (f zeroed). */
static sqlite3 *fixture_open(struct fixture *f)
{
    sqlite3 *db;

    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/bfs-replay-XXXXXX");
    cr_assert_not_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof(f->db), "%s/t.db", f->dir);
    cr_assert_eq(sqlite3_open(f->db, &db), SQLITE_OK);
    return db;
}

/* Takes the WAL as it is, checkpoints it into the final file, closes db and finds the commit
 * frames. */
static void fixture_finish(struct fixture *f, sqlite3 *db)
{
    char path[160];

    snprintf(path, sizeof(path), "%s-wal", f->db);
    f->wal = slurp(path, &f->wal_len);
    exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    sqlite3_close(db);
    f->final = slurp(f->db, &f->final_len);
    struct wal_header h;
    cr_assert_eq(wal_header_parse(f->wal, &h, NULL), 0);
    f->page_size = h.page_size;
    size_t fs = WAL_FRAME_HEADER_BYTES + h.page_size;
    uint32_t n_frames = (uint32_t)((f->wal_len - WAL_HEADER_BYTES) / fs);
    for (uint32_t i = 1; i <= n_frames; i++) {
        const uint8_t *fh = f->wal + wal_frame_offset(h.page_size, i);
        if (be32_load(fh + 4) && f->n_commits < 64)
            f->commits[f->n_commits++] = i;
    }
}

/* page_size, n_txns transactions of rows_per_txn rows each (every third also deletes). */
static void build(struct fixture *f, uint32_t page_size, int n_txns, int rows_per_txn)
{
    sqlite3 *db = fixture_open(f);
    char sql[256];

    snprintf(sql, sizeof(sql), "PRAGMA page_size=%u", page_size);
    exec(db, sql);
    exec(db, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=10");
    exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB); CREATE INDEX tv ON t(v)");
    exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    f->base = slurp(f->db, &f->base_len);
    for (int t = 0; t < n_txns; t++) {
        exec(db, "BEGIN");
        for (int r = 0; r < rows_per_txn; r++) {
            snprintf(sql, sizeof(sql), "INSERT INTO t(v) VALUES(randomblob(%d))", 100 + r % 300);
            exec(db, sql);
        }
        if (t % 3 == 2)
            exec(db, "DELETE FROM t WHERE id % 5 = 0");
        exec(db, "COMMIT");
    }
    fixture_finish(f, db);
    cr_assert_eq(f->n_commits, n_txns, "commits %d", f->n_commits);
}

static void cleanup(struct fixture *f)
{
    fileio_rm_rf(f->dir, NULL);
    free(f->base);
    free(f->wal);
    free(f->final);
}

static int target_from_base(struct fixture *f)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/restored.db", f->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(fileio_pwrite_all(fd, f->base, f->base_len, 0), 0);
    return fd;
}

static struct gen_meta meta_of(const struct fixture *f)
{
    struct gen_meta m = {.page_size = f->page_size,
                         .cksum1 = be32_load(f->wal + 24),
                         .cksum2 = be32_load(f->wal + 28)};
    return m;
}

static const uint8_t *frames(const struct fixture *f, uint32_t first)
{
    return f->wal + wal_frame_offset(f->page_size, first);
}

static size_t span(const struct fixture *f, uint32_t first, uint32_t last)
{
    return (size_t)(last - first + 1) * (WAL_FRAME_HEADER_BYTES + f->page_size);
}

static void assert_file_eq(int fd, const uint8_t *want, size_t len)
{
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    cr_assert_eq((size_t)st.st_size, len, "size %lld want %zu", (long long)st.st_size, len);
    uint8_t *got = malloc(len ? len : 1);
    size_t n = 0;
    cr_assert_eq(fileio_pread_full(fd, got, len, 0, &n), 0);
    cr_assert_eq(n, len);
    cr_assert(memcmp(got, want, len) == 0, "content differs");
    free(got);
}

/* Feeds frames [first, last] as one batch, in odd-sized pieces. */
static int feed_batch(struct replay *r, struct fixture *f, uint32_t first, uint32_t last,
                      const uint8_t *body, size_t len, struct err *err)
{
    int rc = replay_batch_begin(r, first, last, last, err);
    for (size_t off = 0; !rc && off < len; off += 1000) {
        size_t k = len - off < 1000 ? len - off : 1000;
        rc = replay_feed(r, body + off, k, err);
    }
    (void)f;
    return rc ? rc : replay_batch_end(r, err);
}

static void full_replay(uint32_t page_size)
{
    struct fixture f;
    build(&f, page_size, 8, 40);
    int fd = target_from_base(&f);
    struct err err = {0};
    struct replay *r = replay_new(fd, f.dir, &err);
    struct gen_meta m = meta_of(&f);
    cr_assert_eq(replay_gen_begin(r, &m, true, &err), 0, "%s", err.msg);
    /* one batch per transaction (whole transactions, like our replicator) */
    uint32_t first = 1;
    for (int i = 0; i < f.n_commits; i++) {
        uint32_t last = f.commits[i];
        cr_assert_eq(feed_batch(r, &f, first, last, frames(&f, first), span(&f, first, last),
                                &err),
                     0, "%s", err.msg);
        first = last + 1;
    }
    replay_gen_end(r);
    struct replay_stats st;
    replay_get_stats(r, &st);
    cr_assert_eq(st.txns_applied, 8);
    cr_assert_eq(st.last_commit_frame, f.commits[7]);
    assert_file_eq(fd, f.final, f.final_len);
    replay_free(r);
    close(fd);
    cleanup(&f);
}

Test(replay, real_wal_gives_checkpointed_file_4096)
{
    full_replay(4096);
}
Test(replay, real_wal_gives_checkpointed_file_512)
{
    full_replay(512);
}
Test(replay, real_wal_gives_checkpointed_file_65536)
{
    full_replay(65536);
}

Test(replay, batches_cut_mid_transaction_and_spill_to_scratch)
{
    struct fixture f;
    build(&f, 1024, 3, 20000); /* big transactions: > REPLAY_MEM_PENDING pending */
    int fd = target_from_base(&f);
    struct err err = {0};
    struct replay *r = replay_new(fd, f.dir, &err);
    struct gen_meta m = meta_of(&f);
    uint32_t n_frames = f.commits[f.n_commits - 1];
    cr_assert_gt((uint64_t)n_frames * 1024, (uint64_t)REPLAY_MEM_PENDING);
    cr_assert_eq(replay_gen_begin(r, &m, true, &err), 0);
    for (uint32_t first = 1; first <= n_frames; first += 777) {
        uint32_t last = first + 776 > n_frames ? n_frames : first + 776;
        cr_assert_eq(feed_batch(r, &f, first, last, frames(&f, first), span(&f, first, last),
                                &err),
                     0, "%s", err.msg);
    }
    replay_gen_end(r);
    assert_file_eq(fd, f.final, f.final_len);
    replay_free(r);
    close(fd);
    cleanup(&f);
}

Test(replay, flipped_bit_stops_at_last_complete_transaction)
{
    struct fixture f;
    build(&f, 4096, 6, 40);
    /* reference: state after the first 3 transactions = replay of frames 1..commits[2] */
    int ref = target_from_base(&f);
    struct err err = {0};
    struct gen_meta m = meta_of(&f);
    struct replay *r = replay_new(ref, f.dir, &err);
    cr_assert_eq(replay_gen_begin(r, &m, true, &err), 0);
    cr_assert_eq(feed_batch(r, &f, 1, f.commits[2], frames(&f, 1), span(&f, 1, f.commits[2]),
                            &err),
                 0);
    replay_free(r);
    size_t ref_len = (size_t)lseek(ref, 0, SEEK_END);
    uint8_t *want = malloc(ref_len);
    size_t got = 0;
    fileio_pread_full(ref, want, ref_len, 0, &got);
    close(ref);

    /* corrupt one byte of a page inside transaction 4 */
    uint32_t bad_frame = f.commits[2] + 2;
    f.wal[wal_frame_offset(f.page_size, bad_frame) + 24 + 100] ^= 0x04;
    int fd = target_from_base(&f);
    r = replay_new(fd, f.dir, &err);
    cr_assert_eq(replay_gen_begin(r, &m, true, &err), 0);
    uint32_t last = f.commits[5];
    int rc = feed_batch(r, &f, 1, last, frames(&f, 1), span(&f, 1, last), &err);
    cr_assert_eq(rc, EBADMSG);
    char want_msg[64];
    snprintf(want_msg, sizeof(want_msg), "frame %u", bad_frame);
    cr_assert(strstr(err.msg, want_msg) && strstr(err.msg, "checksum"), "%s", err.msg);
    struct replay_stats st;
    replay_get_stats(r, &st);
    cr_assert_eq(st.txns_applied, 3);
    cr_assert_eq(st.last_commit_frame, f.commits[2]);
    assert_file_eq(fd, want, ref_len);
    replay_free(r);
    close(fd);
    free(want);
    cleanup(&f);
}

Test(replay, truncated_body_and_wrong_start_are_reported)
{
    struct fixture f;
    build(&f, 4096, 2, 10);
    int fd = target_from_base(&f);
    struct err err = {0};
    struct gen_meta m = meta_of(&f);
    struct replay *r = replay_new(fd, f.dir, &err);
    cr_assert_eq(replay_gen_begin(r, &m, true, &err), 0);
    uint32_t last = f.commits[1];
    int rc = feed_batch(r, &f, 1, last, frames(&f, 1), span(&f, 1, last) - 100, &err);
    cr_assert_eq(rc, EBADMSG);
    cr_assert(strstr(err.msg, "truncated"), "%s", err.msg);
    struct replay_stats st;
    replay_get_stats(r, &st);
    cr_assert_eq(st.txns_applied, 1, "first transaction complete before the cut");
    replay_free(r);

    err_clear(&err);
    r = replay_new(fd, f.dir, &err);
    cr_assert_eq(replay_gen_begin(r, &m, true, &err), 0);
    cr_assert_eq(replay_batch_begin(r, 2, 3, 3, &err), EBADMSG);
    err_clear(&err);
    /* longer than the name says */
    cr_assert_eq(replay_batch_begin(r, 1, 1, 1, &err), 0);
    cr_assert_eq(replay_feed(r, frames(&f, 1), span(&f, 1, 2), &err), EBADMSG);
    cr_assert(strstr(err.msg, "longer"), "%s", err.msg);
    replay_free(r);

    struct gen_meta bad = {.page_size = 1000};
    r = replay_new(fd, f.dir, NULL);
    cr_assert_eq(replay_gen_begin(r, &bad, true, NULL), EBADMSG);
    replay_free(r);
    close(fd);
    cleanup(&f);
}

Test(replay, big_endian_checksums_are_accepted)
{
    /* rewrite the WAL with big-endian checksum words: new header magic + recomputed chain */
    struct fixture f;
    build(&f, 4096, 3, 20);
    struct wal_header h;
    cr_assert_eq(wal_header_parse(f.wal, &h, NULL), 0);
    h.big_endian = true;
    wal_header_encode(&h, f.wal);
    uint32_t s[2] = {be32_load(f.wal + 24), be32_load(f.wal + 28)};
    uint32_t n = f.commits[2];
    for (uint32_t i = 1; i <= n; i++) {
        uint8_t *fh = f.wal + wal_frame_offset(f.page_size, i);
        wal_checksum(true, fh, 8, s);
        wal_checksum(true, fh + 24, f.page_size, s);
        be32_store(fh + 16, s[0]);
        be32_store(fh + 20, s[1]);
    }
    int fd = target_from_base(&f);
    struct err err = {0};
    struct gen_meta m = meta_of(&f);
    struct replay *r = replay_new(fd, f.dir, &err);
    cr_assert_eq(replay_gen_begin(r, &m, true, &err), 0);
    cr_assert_eq(feed_batch(r, &f, 1, n, frames(&f, 1), span(&f, 1, n), &err), 0, "%s", err.msg);
    struct replay_stats st;
    replay_get_stats(r, &st);
    cr_assert(st.big_endian);
    assert_file_eq(fd, f.final, f.final_len);
    replay_free(r);
    close(fd);
    cleanup(&f);
}

/* Replays the fixture's whole WAL into an empty file with page tracking on; returns
 * replay_first_missing_page() and leaves the result in *fd_out. */
static uint32_t replay_from_empty(struct fixture *f, int *fd_out)
{
    char path[160];
    struct err err = {0};
    snprintf(path, sizeof(path), "%s/from-empty.db", f->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0);
    struct replay *r = replay_new(fd, f->dir, &err);
    struct gen_meta m = meta_of(f);
    replay_track_pages(r);
    cr_assert_eq(replay_gen_begin(r, &m, true, &err), 0);
    uint32_t n = f->commits[f->n_commits - 1];
    cr_assert_eq(feed_batch(r, f, 1, n, frames(f, 1), span(f, 1, n), &err), 0, "%s", err.msg);
    replay_gen_end(r);
    uint32_t missing = replay_first_missing_page(r);
    replay_free(r);
    *fd_out = fd;
    return missing;
}

/* A base made by base_sql (checkpointed into the main file), then a WAL made by wal_sql. */
static void build_sql(struct fixture *f, const char *base_sql, const char *wal_sql)
{
    sqlite3 *db = fixture_open(f);

    exec(db, "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0");
    exec(db, base_sql);
    exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    f->base = slurp(f->db, &f->base_len);
    exec(db, wal_sql);
    fixture_finish(f, db);
    cr_assert_geq(f->n_commits, 1);
}

#define BASE_SQL                                                                                 \
    "CREATE TABLE u(v BLOB); CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);"                   \
    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200) "             \
    "INSERT INTO u SELECT randomblob(300) FROM c"
#define WAL_SQL                                                                                  \
    "INSERT INTO t(v) VALUES(randomblob(100)); INSERT INTO t(v) VALUES(randomblob(3000));"

Test(replay, wal_without_its_base_names_a_missing_page)
{
    /* table u lives only in the base: its pages are never in the WAL */
    struct fixture f;
    build_sql(&f, BASE_SQL, WAL_SQL);
    int fd;
    uint32_t missing = replay_from_empty(&f, &fd);
    cr_assert_neq(missing, 0, "a WAL on top of a non-empty base must leave pages missing");
    cr_assert_leq(missing, f.final_len / f.page_size);
    close(fd);
    cleanup(&f);
}

Test(replay, wal_that_rewrites_every_page_restores_from_nothing)
{
    /* VACUUM in WAL mode writes every page of the database into the WAL */
    struct fixture f;
    build_sql(&f, BASE_SQL, WAL_SQL " VACUUM;");
    int fd;
    cr_assert_eq(replay_from_empty(&f, &fd), 0);
    assert_file_eq(fd, f.final, f.final_len);
    close(fd);
    cleanup(&f);
}
