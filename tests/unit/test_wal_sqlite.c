/* tests/unit/test_wal_sqlite.c - the incremental decoder on WALs written by real libsqlite3.
 *
 * tapvfs reports every -wal write/truncate after SQLite performed it (what the FUSE daemon sees)
 * and a live decoder reads back from the real file. Oracles, independent of the decoder:
 *  - sqlite3_wal_hook fires once per committed transaction with the WAL's frame count: the
 *    decoder must have reported exactly the frames since the previous hook (frame 1 on if the
 *    WAL header's salts changed), as one commit (plus 1-frame padding commits with psow=0);
 *  - PRAGMA page_count after each statement equals the last commit's db size;
 *  - a shadow database built only from the reported frames (each page at (pgno-1)*page_size,
 *    size from the commit) equals the real database after a final full checkpoint;
 *  - the recorded writes replayed into fresh decoders in random splits give the same commits,
 *    and wal_decoder_scan of the real WAL gives the commits of its current sequence;
 *  - showwal (sqlite3-tools) prints the same frame headers as walfmt parses. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/lib/tapvfs.h"
#include "tests/lib/walgen.h"
#include "wal/decoder.h"

struct live {
    char dir[64], db_path[128], wal_path[160];
    struct tapvfs *tap;
    sqlite3 *db;
    int wal_fd, db_fd;
    struct wal_decoder *dec;
    struct walops ops;

    struct wal_commit *commits;
    size_t n_commits, cap_commits;
    size_t seq_start; /* index of the first commit of the current WAL sequence */
    size_t hooked;    /* commits already matched by wal hooks */
    struct exp_range {
        uint32_t first, last, salt1, salt2;
        bool zero_salted_commit; /* the commit frame was zero-salted at hook time */
    } exp[4096];
    size_t n_exp, n_exp_done;
    bool deferred_pending;
    size_t n_rechained, n_zero_salted_commits;
    size_t n_hooks, n_restarts, n_truncates, n_padding;
    uint32_t hook_prev; /* frame count at the previous hook */
    uint32_t salt[2];   /* WAL header salts seen at the previous hook */
    bool allow_padding;
    char failure[512]; /* first oracle failure seen inside a callback */

    uint8_t *shadow;
    size_t shadow_len, shadow_cap;
    struct memwal shipped; /* header + every reported frame, rechained: what a replica gets */
    bool shadow_init;

    /* what the tap saw: evidence that a test covers the path it claims to */
    size_t n_inplace_page_writes, n_unsalted_headers, n_header_writes;
    uint64_t wal_hwm;
};

/* The test's temporary directory, removed by the suite's fini even when an assertion fails
 * (each test runs in its own process, so this is per test). */
static char cleanup_dir[64];

static void remove_test_dir(void)
{
    static const char *const names[] = {"t.db", "t.db-wal", "t.db-shm", "t.db-journal"};
    char p[128];

    if (!cleanup_dir[0])
        return;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", cleanup_dir, names[i]);
        unlink(p);
    }
    rmdir(cleanup_dir);
    cleanup_dir[0] = 0;
}

TestSuite(wal_sqlite, .fini = remove_test_dir);

static void failf(struct live *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(struct live *l, const char *fmt, ...)
{
    va_list ap;
    if (l->failure[0])
        return;
    va_start(ap, fmt);
    vsnprintf(l->failure, sizeof(l->failure), fmt, ap);
    va_end(ap);
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
    size_t n = 0;
    while (n < len) {
        ssize_t r = pread(fd, (uint8_t *)buf + n, len - n, (off_t)(off + n));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *got = n;
    return 0;
}

/* All of fd's file (caller frees), its size in *len_out. */
static uint8_t *read_file(int fd, size_t *len_out)
{
    struct stat st;
    uint8_t *buf;
    size_t got;

    cr_assert_eq(fstat(fd, &st), 0);
    buf = malloc((size_t)st.st_size + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(pread_all(fd, buf, (size_t)st.st_size, 0, &got), 0);
    cr_assert_eq(got, (size_t)st.st_size);
    *len_out = got;
    return buf;
}

static int live_read(void *arg, uint64_t off, void *buf, size_t len, size_t *got, struct err *e)
{
    struct live *l = arg;
    int rc = pread_all(l->wal_fd, buf, len, off, got);
    if (rc)
        return ERR(e, rc, "pread %s", l->wal_path);
    return 0;
}

static void shadow_resize(struct live *l, size_t len)
{
    if (len > l->shadow_cap) {
        size_t cap = l->shadow_cap ? l->shadow_cap : 65536;
        while (cap < len)
            cap *= 2;
        l->shadow = realloc(l->shadow, cap);
        cr_assert_not_null(l->shadow);
        l->shadow_cap = cap;
    }
    if (len > l->shadow_len)
        memset(l->shadow + l->shadow_len, 0, len - l->shadow_len);
    l->shadow_len = len;
}

/* The db file as it was before the first WAL frame: SQLite changes it only by checkpoints. */
static void shadow_init(struct live *l)
{
    struct stat st;
    size_t got;

    if (l->shadow_init)
        return;
    l->shadow_init = true;
    cr_assert_eq(fstat(l->db_fd, &st), 0);
    shadow_resize(l, (size_t)st.st_size);
    cr_assert_eq(pread_all(l->db_fd, l->shadow, (size_t)st.st_size, 0, &got), 0);
    cr_assert_eq(got, (size_t)st.st_size);
}

static int live_commit(void *arg, const struct wal_commit *c, struct err *e)
{
    struct live *l = arg;
    uint64_t fsz = 24 + (uint64_t)c->page_size;
    uint8_t *buf = malloc((size_t)c->n_bytes);
    size_t got;

    (void)e;
    cr_assert_not_null(buf);
    cr_assert_eq(pread_all(l->wal_fd, buf, (size_t)c->n_bytes, c->first_off, &got), 0);
    cr_assert_eq(got, (size_t)c->n_bytes);
    {
        /* rechaining from prev gives the reported checksum; a normal commit is unchanged */
        uint8_t *copy = malloc((size_t)c->n_bytes);
        uint32_t s[2] = {c->prev1, c->prev2};
        memcpy(copy, buf, (size_t)c->n_bytes);
        wal_frames_rechain(c->big_endian, c->salt1, c->salt2, c->page_size, buf,
                           c->last - c->first + 1, s);
        if (s[0] != c->cksum1 || s[1] != c->cksum2)
            failf(l, "commit %u-%u: rechained checksum differs", c->first, c->last);
        if (!c->rechained && memcmp(copy, buf, (size_t)c->n_bytes) != 0)
            failf(l, "commit %u-%u: not rechained but its stored chain is wrong", c->first,
                  c->last);
        free(copy);
        memwal_write(&l->shipped, c->first_off, buf, (size_t)c->n_bytes);
    }
    for (uint32_t i = 0; i <= c->last - c->first; i++) {
        const uint8_t *f = buf + i * fsz;
        uint32_t pgno = be32_load(f);
        if (be32_load(f + 8) != c->salt1 || be32_load(f + 12) != c->salt2)
            failf(l, "commit %u-%u: frame %u has foreign salts", c->first, c->last, c->first + i);
        cr_assert_gt(pgno, 0u);
        if ((size_t)pgno * c->page_size > l->shadow_len)
            shadow_resize(l, (size_t)pgno * c->page_size);
        memcpy(l->shadow + (size_t)(pgno - 1) * c->page_size, f + 24, c->page_size);
    }
    {
        const uint8_t *lastf = buf + (size_t)(c->last - c->first) * fsz;
        if (be32_load(lastf + 4) != c->db_pages || be32_load(lastf + 16) != c->cksum1 ||
            be32_load(lastf + 20) != c->cksum2)
            failf(l, "commit %u-%u: db size/checksum differ from the commit frame", c->first,
                  c->last);
    }
    shadow_resize(l, (size_t)c->db_pages * c->page_size);
    free(buf);
    if (l->n_commits == l->cap_commits) {
        l->cap_commits = l->cap_commits ? l->cap_commits * 2 : 256;
        l->commits = realloc(l->commits, l->cap_commits * sizeof(*l->commits));
        cr_assert_not_null(l->commits);
    }
    l->commits[l->n_commits++] = *c;
    return 0;
}

static int live_restart(void *arg, const struct wal_header *h, struct err *e)
{
    struct live *l = arg;
    uint8_t hb[32];
    (void)e;
    l->n_restarts++;
    l->seq_start = l->n_commits;
    wal_header_encode(h, hb);
    memwal_truncate(&l->shipped, 0);
    memwal_write(&l->shipped, 0, hb, sizeof(hb));
    return 0;
}

static int live_truncate(void *arg, uint64_t size, struct err *e)
{
    struct live *l = arg;
    (void)size;
    (void)e;
    l->n_truncates++;
    l->seq_start = l->n_commits;
    return 0;
}

static void open_wal_fd(struct live *l, const char *path)
{
    if (l->wal_fd >= 0)
        return;
    cr_assert_str_eq(path, l->wal_path);
    l->wal_fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(l->wal_fd, 0, "open %s", path);
}

static void tap_write(void *arg, const char *path, uint64_t off, const void *buf, size_t len)
{
    struct live *l = arg;
    struct err e = {0};
    int rc;

    open_wal_fd(l, path);
    shadow_init(l);
    walops_add_write(&l->ops, off, buf, len);
    /* evidence of the paths taken */
    if (off == 0 && len == 32)
        l->wal_hwm = 0;
    if (len == 24) {
        l->n_header_writes++;
        if (be32_load((const uint8_t *)buf + 8) == 0 && be32_load((const uint8_t *)buf + 12) == 0)
            l->n_unsalted_headers++;
    } else if (off > 32 && off + len <= l->wal_hwm) {
        l->n_inplace_page_writes++;
    }
    if (off + len > l->wal_hwm)
        l->wal_hwm = off + len;
    rc = wal_decoder_wrote(l->dec, off, buf, len, &e);
    if (rc)
        failf(l, "wal_decoder_wrote: %s", e.msg);
}

static void tap_truncate(void *arg, const char *path, uint64_t size)
{
    struct live *l = arg;
    struct err e = {0};

    open_wal_fd(l, path);
    walops_add_truncate(&l->ops, size);
    if (size < l->wal_hwm)
        l->wal_hwm = size;
    if (wal_decoder_truncated(l->dec, size, &e))
        failf(l, "wal_decoder_truncated: %s", e.msg);
}

/* Matches the decoder's commits since the last match against the expected ranges, oldest
 * first. A range may stay unmatched only if it is the newest and its commit frame is still
 * zero-salted in the file: SQLite 3.40.1 left it so (the SQLite-bug rule in decoder.h) and the
 * decoder reports it once SQLite moves on. */
static void match_expected(struct live *l, bool allow_deferred)
{
    while (l->n_exp_done < l->n_exp) {
        struct exp_range *x = &l->exp[l->n_exp_done];
        if (l->hooked == l->n_commits) {
            if (allow_deferred && l->n_exp_done + 1 == l->n_exp && x->zero_salted_commit) {
                l->deferred_pending = true;
                return;
            }
            failf(l, "frames %u-%u committed (hook %zu) but the decoder reported nothing", x->first,
                  x->last, l->n_exp_done + 1);
            return;
        }
        uint32_t first = x->first;
        size_t i = l->hooked;
        for (; i < l->n_commits && first <= x->last; i++) {
            const struct wal_commit *c = &l->commits[i];
            if (c->first != first || c->salt1 != x->salt1 || c->salt2 != x->salt2) {
                failf(l, "decoder commit %u-%u, expected a commit starting at %u (range %u-%u)",
                      c->first, c->last, first, x->first, x->last);
                return;
            }
            if (i > l->hooked) {
                if (!l->allow_padding || c->first != c->last ||
                    c->db_pages != l->commits[i - 1].db_pages) {
                    failf(l, "%zu commits for the transaction %u-%u", i - l->hooked + 1, x->first,
                          x->last);
                    return;
                }
                l->n_padding++;
            }
            if (c->rechained)
                l->n_rechained++;
            first = c->last + 1;
        }
        if (first != x->last + 1) {
            failf(l, "decoder commits end at %u, the transaction at %u", first - 1, x->last);
            return;
        }
        l->hooked = i;
        l->n_exp_done++;
        l->deferred_pending = false;
    }
}

/* Runs after every commit (replaces the autocheckpoint hook: checkpoints are explicit). */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int n_frames)
{
    struct live *l = arg;
    uint8_t h[32], fh[24];
    size_t got;

    (void)db;
    (void)name;
    l->n_hooks++;
    if (pread_all(l->wal_fd, h, 32, 0, &got) || got != 32) {
        failf(l, "hook: cannot read the WAL header");
        return SQLITE_OK;
    }
    if (be32_load(h + 16) != l->salt[0] || be32_load(h + 20) != l->salt[1]) {
        l->salt[0] = be32_load(h + 16);
        l->salt[1] = be32_load(h + 20);
        l->hook_prev = 0;
    }
    cr_assert_lt(l->n_exp, sizeof(l->exp) / sizeof(l->exp[0]));
    struct exp_range *x = &l->exp[l->n_exp++];
    x->first = l->hook_prev + 1;
    x->last = (uint32_t)n_frames;
    x->salt1 = l->salt[0];
    x->salt2 = l->salt[1];
    uint32_t ps = be32_load(h + 8) == 1 ? 65536 : be32_load(h + 8);
    if (pread_all(l->wal_fd, fh, 24, wal_frame_offset(ps, x->last), &got) || got != 24) {
        failf(l, "hook: cannot read frame %u", x->last);
        return SQLITE_OK;
    }
    x->zero_salted_commit = be32_load(fh + 4) != 0 && be32_load(fh + 8) == 0 &&
                            be32_load(fh + 12) == 0 && be32_load(fh + 16) == 0;
    if (x->zero_salted_commit)
        l->n_zero_salted_commits++;
    l->hook_prev = (uint32_t)n_frames;
    match_expected(l, true);
    return SQLITE_OK;
}

static void live_exec(struct live *l, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(l->db, sql, NULL, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
    match_expected(l, true);
    cr_assert_str_empty(l->failure, "after '%.60s': %s", sql, l->failure);
    cr_assert_eq(l->hooked, l->n_commits, "after '%.60s': %zu commits not matched by a hook", sql,
                 l->n_commits - l->hooked);
    cr_assert_eq(l->n_exp_done + (l->deferred_pending ? 1 : 0), l->n_exp);
}

static int64_t query_int(struct live *l, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v;
    cr_assert_eq(sqlite3_prepare_v2(l->db, sql, -1, &st, NULL), SQLITE_OK, "%s", sql);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The newest commit the decoder reported. */
static const struct wal_commit *last_commit(const struct live *l)
{
    cr_assert_gt(l->n_commits, 0, "no commit reported yet");
    return &l->commits[l->n_commits - 1];
}

/* Statement(s), then: the db size after the last commit is what SQLite says. */
static void run(struct live *l, const char *sql)
{
    size_t before = l->n_commits;
    live_exec(l, sql);
    if (l->n_commits > before && !l->deferred_pending)
        cr_assert_eq((int64_t)last_commit(l)->db_pages, query_int(l, "PRAGMA page_count"),
                     "after '%.60s'", sql);
}

/* Creates an empty WAL database (page size, journal mode set through the default VFS), then
 * opens it through the tap. uri_params: extra "&k=v" for the tap connection ("" if none). */
static void live_open(struct live *l, uint32_t page_size, const char *uri_params)
{
    struct wal_decoder_ops ops = {live_read, live_commit, live_restart, live_truncate};
    struct tapvfs_hooks hooks = {0};
    struct err e = {0};
    sqlite3 *db0;
    char sql[128], uri[512];

    memset(l, 0, sizeof(*l));
    l->wal_fd = l->db_fd = -1;
    snprintf(l->dir, sizeof(l->dir), "/tmp/bfs-walsql-XXXXXX");
    remove_test_dir(); /* a previous database of the same test */
    cr_assert_not_null(mkdtemp(l->dir));
    memcpy(cleanup_dir, l->dir, sizeof(cleanup_dir));
    snprintf(l->db_path, sizeof(l->db_path), "%s/t.db", l->dir);
    snprintf(l->wal_path, sizeof(l->wal_path), "%s-wal", l->db_path);

    cr_assert_eq(sqlite3_open(l->db_path, &db0), SQLITE_OK);
    snprintf(sql, sizeof(sql), "PRAGMA page_size=%u; PRAGMA journal_mode=WAL;", page_size);
    cr_assert_eq(sqlite3_exec(db0, sql, NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_close(db0), SQLITE_OK);
    l->db_fd = open(l->db_path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(l->db_fd, 0);

    l->dec = wal_decoder_new(&ops, l, &e);
    cr_assert_not_null(l->dec, "%s", e.msg);
    hooks.arg = l;
    hooks.wal_write = tap_write;
    hooks.wal_truncate = tap_truncate;
    l->tap = tapvfs_register(&hooks);
    cr_assert_not_null(l->tap);
    snprintf(uri, sizeof(uri), "file:%s?vfs=%s%s", l->db_path, tapvfs_name(l->tap), uri_params);
    cr_assert_eq(sqlite3_open_v2(uri, &l->db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI,
                                 NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(l->db));
    sqlite3_wal_hook(l->db, wal_hook, l);
    live_exec(l, "PRAGMA journal_mode=WAL");
    /* a number series for INSERT ... SELECT (this libsqlite3 has no generate_series); the temp
     * database is not in WAL mode and never touches the -wal */
    live_exec(l, "CREATE TEMP TABLE gs(value INTEGER PRIMARY KEY);"
                 " WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 5000)"
                 " INSERT INTO gs SELECT v FROM s");
    cr_assert_eq(l->n_commits, 0);
    cr_assert_eq(query_int(l, "PRAGMA page_size"), (int64_t)page_size);
}

static void same_commit_lists(const struct wal_commit *a, size_t na, const struct wal_commit *b,
                              size_t nb, const char *what)
{
    if (getenv("WALSQL_DEBUG"))
        for (size_t i = 0; i < na || i < nb; i++)
            fprintf(stderr, "%s %zu: %u-%u db=%u ck=%08x r=%d | %u-%u db=%u ck=%08x r=%d\n", what,
                    i, i < na ? a[i].first : 0, i < na ? a[i].last : 0, i < na ? a[i].db_pages : 0,
                    i < na ? a[i].cksum1 : 0, i < na ? a[i].rechained : 0, i < nb ? b[i].first : 0,
                    i < nb ? b[i].last : 0, i < nb ? b[i].db_pages : 0, i < nb ? b[i].cksum1 : 0,
                    i < nb ? b[i].rechained : 0);
    cr_assert_eq(na, nb, "%s: %zu vs %zu commits", what, na, nb);
    for (size_t i = 0; i < na; i++) {
        cr_assert_eq(a[i].first, b[i].first, "%s: commit %zu", what, i);
        cr_assert_eq(a[i].last, b[i].last, "%s: commit %zu", what, i);
        cr_assert_eq(a[i].db_pages, b[i].db_pages, "%s: commit %zu", what, i);
        cr_assert_eq(a[i].salt1, b[i].salt1, "%s: commit %zu", what, i);
        cr_assert_eq(a[i].cksum1, b[i].cksum1, "%s: commit %zu", what, i);
        cr_assert_eq(a[i].cksum2, b[i].cksum2, "%s: commit %zu", what, i);
    }
}

struct replayed {
    struct memwal file;
    struct wal_commit *c;
    size_t n, cap;
};

static int rp_commit(void *arg, const struct wal_commit *c, struct err *e)
{
    struct replayed *r = arg;
    (void)e;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->c = realloc(r->c, r->cap * sizeof(*r->c));
    }
    r->c[r->n++] = *c;
    return 0;
}

static int rp_read(void *arg, uint64_t off, void *buf, size_t len, size_t *got, struct err *e)
{
    struct replayed *r = arg;
    return memwal_read(&r->file, off, buf, len, got, e);
}

/* An empty replayed state (caller frees) and, in *d_out, a decoder that records into it and
 * reads back its file. */
static struct replayed *replayed_new(struct wal_decoder **d_out)
{
    struct replayed *r = calloc(1, sizeof(*r));
    struct wal_decoder_ops ops = {rp_read, rp_commit, NULL, NULL};

    cr_assert_not_null(r);
    *d_out = wal_decoder_new(&ops, r, NULL);
    cr_assert_not_null(*d_out);
    return r;
}

static void replayed_free(struct replayed *r)
{
    memwal_free(&r->file);
    free(r->c);
    free(r);
}

/* Replays the recorded writes into a fresh decoder; split: 0 as recorded, 1 random chunks,
 * 2 contiguous writes merged. Returns the replayed state (caller frees). */
static struct replayed *replay_ops(const struct walops *ops, int split, unsigned seed)
{
    struct wal_decoder *d;
    struct replayed *r = replayed_new(&d);

    srand(seed);
    for (size_t i = 0; i < ops->n; i++) {
        const struct walop *op = &ops->v[i];
        if (op->kind == WALOP_TRUNCATE) {
            memwal_truncate(&r->file, op->off);
            cr_assert_eq(wal_decoder_truncated(d, op->off, NULL), 0);
            continue;
        }
        if (split == 2) {
            size_t j = i;
            while (j + 1 < ops->n && ops->v[j + 1].kind == WALOP_WRITE &&
                   ops->v[j + 1].off == ops->v[j].off + ops->v[j].len)
                j++;
            for (size_t k = i; k <= j; k++)
                memwal_write(&r->file, ops->v[k].off, ops->v[k].data, ops->v[k].len);
            uint64_t end = ops->v[j].off + ops->v[j].len;
            cr_assert_eq(wal_decoder_wrote(d, op->off, r->file.data + op->off,
                                           (size_t)(end - op->off), NULL),
                         0);
            i = j;
            continue;
        }
        for (size_t pos = 0; pos < op->len;) {
            size_t n = op->len - pos;
            if (split == 1 && n > 1)
                n = 1 + (size_t)rand() % (n < 5000 ? n : 5000);
            memwal_write(&r->file, op->off + pos, op->data + pos, n);
            cr_assert_eq(wal_decoder_wrote(d, op->off + pos, op->data + pos, n, NULL), 0);
            pos += n;
        }
    }
    wal_decoder_free(d);
    return r;
}

/* The recorded writes replayed (split as replay_ops takes it) give the live decoder's commits. */
static void expect_same_replay(const struct live *l, int split, unsigned seed, const char *what)
{
    struct replayed *r = replay_ops(&l->ops, split, seed);

    same_commit_lists(l->commits, l->n_commits, r->c, r->n, what);
    replayed_free(r);
}

/* A fresh decoder's startup scan of a copy of the WAL bytes: what it reported (caller frees),
 * and its committed frame count in *committed_out. */
static struct replayed *scan_wal(const uint8_t *wal, size_t len, uint32_t *committed_out)
{
    struct wal_decoder *d;
    struct replayed *s = replayed_new(&d);

    memwal_write(&s->file, 0, wal, len);
    cr_assert_eq(wal_decoder_scan(d, len, NULL), 0);
    *committed_out = wal_decoder_committed(d);
    wal_decoder_free(d);
    return s;
}

/* End of a test: replays, scan, final checkpoint and shadow comparison, cleanup. */
static void live_finish(struct live *l)
{
    struct replayed *r;
    uint8_t *wal, *db;
    size_t wal_len, db_len;
    uint32_t committed;

    match_expected(l, false);
    cr_assert_str_empty(l->failure, "%s", l->failure);
    cr_assert_eq(l->hooked, l->n_commits);
    cr_assert_eq(l->n_exp_done, l->n_exp);
    cr_assert_gt(l->n_commits, 0);

    /* the tap saw every byte: the replayed image equals the real WAL */
    wal = read_file(l->wal_fd, &wal_len);
    r = replay_ops(&l->ops, 0, 0);
    cr_assert_eq(wal_len, r->file.len);
    cr_assert(memcmp(wal, r->file.data, wal_len) == 0, "replayed WAL differs");
    replayed_free(r);
    /* startup scan of the real file = the commits of the current sequence */
    r = scan_wal(wal, wal_len, &committed);
    free(wal);
    {
        /* a scan never applies the SQLite-bug rule: it stops before a rechained commit */
        size_t n_strict = 0;
        while (l->seq_start + n_strict < l->n_commits &&
               !l->commits[l->seq_start + n_strict].rechained)
            n_strict++;
        same_commit_lists(l->commits + l->seq_start, n_strict, r->c, r->n, "scan");
        if (n_strict == l->n_commits - l->seq_start)
            cr_assert_eq(committed, wal_decoder_committed(l->dec));
    }
    replayed_free(r);
    /* the shipped (rechained) WAL of the current sequence validates strictly */
    if (l->n_commits > l->seq_start) {
        r = scan_wal(l->shipped.data, l->shipped.len, &committed);
        same_commit_lists(l->commits + l->seq_start, l->n_commits - l->seq_start, r->c, r->n,
                          "shipped");
        replayed_free(r);
    }

    /* the reported frames rebuild the database */
    live_exec(l, "PRAGMA wal_checkpoint(TRUNCATE)");
    {
        sqlite3_stmt *st2;
        cr_assert_eq(sqlite3_prepare_v2(l->db, "PRAGMA integrity_check", -1, &st2, NULL), 0);
        cr_assert_eq(sqlite3_step(st2), SQLITE_ROW);
        cr_assert_str_eq((const char *)sqlite3_column_text(st2, 0), "ok");
        sqlite3_finalize(st2);
    }
    db = read_file(l->db_fd, &db_len);
    cr_assert_eq(db_len, l->shadow_len, "db %zu bytes, shadow %zu", db_len, l->shadow_len);
    cr_assert(memcmp(db, l->shadow, l->shadow_len) == 0,
              "database differs from the frames the decoder reported");
    free(db);

    expect_same_replay(l, 0, 0, "replay");
    for (unsigned seed = 1; seed <= 3; seed++)
        expect_same_replay(l, 1, seed, "random split replay");
    expect_same_replay(l, 2, 0, "coalesced replay");

    cr_assert_eq(sqlite3_close(l->db), SQLITE_OK);
    tapvfs_unregister(l->tap);
    wal_decoder_free(l->dec);
    walops_free(&l->ops);
    memwal_free(&l->shipped);
    free(l->commits);
    free(l->shadow);
    if (l->wal_fd >= 0)
        close(l->wal_fd);
    close(l->db_fd);
    unlink(l->wal_path);
    {
        char p[200];
        snprintf(p, sizeof(p), "%s-shm", l->db_path);
        unlink(p);
    }
    unlink(l->db_path);
    rmdir(l->dir);
}

Test(wal_sqlite, single_and_multi_page_transactions)
{
    struct live l;
    live_open(&l, 4096, "");
    run(&l, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    cr_expect_eq(l.n_commits, 1);
    run(&l, "INSERT INTO t VALUES(1, 'a')");
    cr_expect_eq(last_commit(&l)->first, last_commit(&l)->last);
    run(&l, "BEGIN; INSERT INTO t SELECT value+1, randomblob(3000) FROM gs WHERE value <= 40;"
            " COMMIT");
    cr_expect_gt(last_commit(&l)->last - last_commit(&l)->first, 10u);
    for (int i = 0; i < 30; i++)
        run(&l, "UPDATE t SET v = randomblob(100) WHERE id = 1");
    cr_expect_eq(l.n_commits, 33);
    cr_expect_eq(l.n_hooks, 33);
    cr_expect_eq(l.n_restarts, 1);
    live_finish(&l);
}

Test(wal_sqlite, cache_spill_rewrites_frames_in_place)
{
    struct live l;
    live_open(&l, 1024, "");
    run(&l, "PRAGMA cache_size=5");
    run(&l, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX tv ON t(v)");
    run(&l, "BEGIN;"
            " INSERT INTO t SELECT value, hex(randomblob(40)) FROM gs WHERE value <= 2000;"
            " UPDATE t SET v = hex(randomblob(30)) WHERE id % 3 = 0;"
            " UPDATE t SET v = 'x' || v WHERE id % 5 = 0;"
            " COMMIT");
    run(&l, "BEGIN; UPDATE t SET v = hex(randomblob(20)) WHERE id % 2 = 0;"
            " DELETE FROM t WHERE id % 7 = 0; COMMIT");
    cr_assert_gt(l.n_inplace_page_writes, 0, "no in-place rewrite: the test misses its point");
    cr_assert_gt(l.n_unsalted_headers, 0, "no zero-salt frame headers seen");
    cr_expect_eq(l.n_hooks, 4);
    live_finish(&l);
}

Test(wal_sqlite, rollbacks_and_savepoints)
{
    struct live l;
    live_open(&l, 1024, "");
    run(&l, "PRAGMA cache_size=5");
    run(&l, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    size_t n = l.n_commits;
    /* spilled, then rolled back: frames in the file, nothing committed */
    live_exec(&l, "BEGIN; INSERT INTO t SELECT value, hex(randomblob(60)) FROM"
                  " gs WHERE value <= 1500; ROLLBACK");
    cr_assert_eq(l.n_commits, n);
    cr_assert_gt(l.wal_hwm, wal_decoder_committed_end(l.dec), "rollback did not spill");
    run(&l, "INSERT INTO t VALUES(1, 'one')");
    cr_assert_eq(l.n_commits, n + 1);
    /* with SQLite 3.40.1 this one leaves its commit zero-salted (SQLite-bug rule, decoder.h):
     * the decoder reports it when the next transaction starts */
    run(&l, "BEGIN; INSERT INTO t VALUES(2, 'two'); SAVEPOINT a;"
            " INSERT INTO t SELECT value + 10, hex(randomblob(60)) FROM gs WHERE value <= 1500;"
            " ROLLBACK TO a; INSERT INTO t VALUES(3, 'three'); RELEASE a; COMMIT");
    cr_assert_eq(l.n_exp, 3);
    cr_assert_eq(l.n_commits + (l.deferred_pending ? 1 : 0), n + 2);
    cr_assert_eq(query_int(&l, "SELECT count(*) FROM t"), 3);
    run(&l, "BEGIN; SAVEPOINT b; UPDATE t SET v = 'uno' WHERE id = 1; ROLLBACK TO b;"
            " UPDATE t SET v = 'dos' WHERE id = 2; COMMIT");
    live_exec(&l, "BEGIN; DELETE FROM t; ROLLBACK");
    cr_assert_eq(l.n_commits, n + 3);
    cr_assert_eq(l.n_exp, 4);
    cr_assert_eq(query_int(&l, "SELECT count(*) FROM t"), 3);
    for (int i = 0; i < 5; i++)
        run(&l, "UPDATE t SET v = v || 'x' WHERE id = 3");
    if (l.n_zero_salted_commits > 0)
        cr_assert_gt(l.n_rechained, 0, "zero-salted commit was never reported as rechained");
    cr_log_info("sqlite %s: zero-salted commits %zu, rechained %zu", sqlite3_libversion(),
                l.n_zero_salted_commits, l.n_rechained);
    live_finish(&l);
}

Test(wal_sqlite, vacuum_shrinks_the_database)
{
    struct live l;
    live_open(&l, 4096, "");
    run(&l, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    run(&l, "INSERT INTO t SELECT value, randomblob(2000) FROM gs WHERE value <= 300");
    run(&l, "DELETE FROM t WHERE id > 20");
    int64_t before = query_int(&l, "PRAGMA page_count");
    run(&l, "VACUUM");
    cr_assert_lt(last_commit(&l)->db_pages, (uint32_t)before);
    live_finish(&l);
}

Test(wal_sqlite, page_sizes_512_to_65536)
{
    for (uint32_t ps = 512; ps <= 65536; ps *= 2) {
        struct live l;
        live_open(&l, ps, "");
        run(&l, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
        run(&l, "INSERT INTO t SELECT value, randomblob(700) FROM gs WHERE value <= 60");
        run(&l, "UPDATE t SET v = randomblob(10) WHERE id % 2 = 0");
        cr_assert_eq(l.commits[0].page_size, ps);
        live_finish(&l);
    }
}

Test(wal_sqlite, checkpoint_then_restart_with_new_salts)
{
    struct live l;
    live_open(&l, 4096, "");
    run(&l, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    for (int i = 0; i < 5; i++)
        run(&l, "INSERT INTO t(v) VALUES(randomblob(5000))");
    uint32_t old_salt1 = last_commit(&l)->salt1;
    uint32_t old_salt2 = last_commit(&l)->salt2;
    cr_assert_eq(l.n_restarts, 1);
    live_exec(&l, "PRAGMA wal_checkpoint(PASSIVE)");
    run(&l, "INSERT INTO t(v) VALUES(randomblob(10))"); /* restarts the WAL */
    cr_assert_eq(l.n_restarts, 2);
    const struct wal_commit *c = last_commit(&l);
    cr_expect_eq(c->first, 1u);
    cr_expect(c->salt1 != old_salt1 || c->salt2 != old_salt2);
    cr_expect_eq(c->ckpt_seq, 1u);
    cr_expect_eq(l.n_truncates, 0);
    run(&l, "INSERT INTO t(v) VALUES(randomblob(10))");
    live_exec(&l, "PRAGMA wal_checkpoint(RESTART)");
    run(&l, "INSERT INTO t(v) VALUES(randomblob(10))");
    cr_assert_eq(l.n_restarts, 3);
    cr_expect_eq(last_commit(&l)->first, 1u);
    live_finish(&l);
}

Test(wal_sqlite, journal_size_limit_truncation_is_silent)
{
    struct live l;
    live_open(&l, 1024, "");
    run(&l, "PRAGMA journal_size_limit=4096");
    run(&l, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    run(&l, "INSERT INTO t SELECT value, randomblob(900) FROM gs WHERE value <= 50");
    live_exec(&l, "PRAGMA wal_checkpoint(PASSIVE)");
    size_t n_ops = l.ops.n;
    run(&l, "INSERT INTO t(v) VALUES(randomblob(10))");
    bool truncated = false;
    for (size_t i = n_ops; i < l.ops.n; i++)
        truncated |= l.ops.v[i].kind == WALOP_TRUNCATE;
    cr_assert(truncated, "SQLite did not truncate the WAL");
    cr_expect_eq(l.n_truncates, 0);
    run(&l, "INSERT INTO t(v) VALUES(randomblob(10))");
    cr_expect_eq(last_commit(&l)->first, 2u);
    live_finish(&l);
}

Test(wal_sqlite, checkpoint_truncate_ends_the_sequence)
{
    struct live l;
    live_open(&l, 4096, "");
    run(&l, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    run(&l, "INSERT INTO t(v) VALUES(randomblob(9000))");
    live_exec(&l, "PRAGMA wal_checkpoint(TRUNCATE)");
    cr_assert_eq(l.n_truncates, 1);
    cr_assert_eq(wal_decoder_committed(l.dec), 0u);
    cr_assert_eq(wal_decoder_page_size(l.dec), 0u);
    run(&l, "INSERT INTO t(v) VALUES(randomblob(10))");
    cr_assert_eq(l.n_restarts, 2);
    cr_expect_eq(last_commit(&l)->first, 1u);
    run(&l, "INSERT INTO t(v) VALUES(randomblob(10))");
    live_finish(&l);
}

Test(wal_sqlite, synchronous_full)
{
    struct live l;
    live_open(&l, 4096, "");
    run(&l, "PRAGMA synchronous=FULL");
    run(&l, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    for (int i = 0; i < 20; i++)
        run(&l, "INSERT INTO t(v) VALUES(randomblob(300))");
    cr_expect_eq(l.n_padding, 0);
    cr_expect_eq(l.n_hooks, 21);
    live_finish(&l);
}

/* Without powersafe overwrite, synchronous=FULL pads each commit to a sector boundary with
 * copies of the commit frame: each is a 1-frame commit of its own. */
Test(wal_sqlite, synchronous_full_sync_padding)
{
    struct live l;
    live_open(&l, 1024, "&psow=0");
    l.allow_padding = true;
    run(&l, "PRAGMA synchronous=FULL");
    run(&l, "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)");
    for (int i = 0; i < 10; i++)
        run(&l, "INSERT INTO t(v) VALUES(randomblob(300))");
    cr_assert_gt(l.n_padding, 0, "no sync padding happened");
    cr_expect_eq(l.n_hooks, 11);
    live_finish(&l);
}

/* Frame headers as showwal (sqlite3-tools) prints them equal walfmt's parse. */
Test(wal_sqlite, frame_headers_match_showwal)
{
    struct live l;
    char cmd[300], line[512];
    FILE *p;
    uint32_t n_frames = 0, n_checked = 0;
    uint8_t *wal;
    size_t wal_len;

    if (access("/usr/bin/showwal", X_OK) != 0)
        cr_skip_test("showwal not installed");
    live_open(&l, 1024, "");
    run(&l, "PRAGMA cache_size=5");
    run(&l, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    run(&l, "INSERT INTO t SELECT value, hex(randomblob(50)) FROM gs WHERE value <= 300");
    run(&l, "BEGIN; UPDATE t SET v = 'x' WHERE id % 2 = 0; UPDATE t SET v = 'yy' WHERE id % 3 = 0;"
            " COMMIT");
    wal = read_file(l.wal_fd, &wal_len);
    struct wal_header h;
    cr_assert_eq(wal_header_parse(wal, &h, NULL), 0);
    n_frames = (uint32_t)(((uint64_t)wal_len - 32) / (24 + h.page_size));
    snprintf(cmd, sizeof(cmd), "/usr/bin/showwal %s", l.wal_path);
    p = popen(cmd, "r");
    cr_assert_not_null(p);
    bool seen[4096] = {0};
    while (fgets(line, sizeof(line), p)) {
        unsigned n, pgno, dbsz, s1, s2, c1, c2;
        if (sscanf(line, "Frame %u: %u %u 0x%x,%x 0x%x,%x", &n, &pgno, &dbsz, &s1, &s2, &c1, &c2) !=
            7)
            continue;
        cr_assert(n >= 1 && n <= n_frames, "showwal frame %u of %u", n, n_frames);
        struct wal_frame_header fh;
        wal_frame_header_parse(wal + wal_frame_offset(h.page_size, n), &fh);
        cr_expect_eq(fh.pgno, pgno, "frame %u", n);
        cr_expect_eq(fh.db_pages, dbsz, "frame %u", n);
        cr_expect_eq(fh.salt1, s1, "frame %u", n);
        cr_expect_eq(fh.salt2, s2, "frame %u", n);
        cr_expect_eq(fh.cksum1, c1, "frame %u", n);
        cr_expect_eq(fh.cksum2, c2, "frame %u", n);
        if (n < 4096 && !seen[n]) {
            seen[n] = true;
            n_checked++;
        }
    }
    cr_assert_eq(pclose(p), 0);
    cr_assert_eq(n_checked, n_frames, "showwal listed %u of %u frames", n_checked, n_frames);
    /* every frame showwal lists up to the decoder's committed count carries the header's salts,
     * and the last committed one is a commit frame */
    uint32_t committed = wal_decoder_committed(l.dec);
    cr_assert_gt(committed, 0u);
    struct wal_frame_header last;
    wal_frame_header_parse(wal + wal_frame_offset(h.page_size, committed), &last);
    cr_expect_neq(last.db_pages, 0u);
    free(wal);
    live_finish(&l);
}
