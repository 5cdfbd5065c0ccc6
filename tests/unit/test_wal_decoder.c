/* tests/unit/test_wal_decoder.c - the incremental WAL decoder on WAL bytes built by walgen:
 * commit detection, in-place rewrites, byte order, torn tails, bit flips, restarts,
 * truncation, random splits, scan, callback errors and read-back cost. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/walgen.h"
#include "wal/decoder.h"

#define MAX_EVENTS 4096

struct rec {
    struct wal_commit c[MAX_EVENTS];
    size_t n;
    size_t n_restarts, n_truncates;
    struct wal_header last_header;
    uint64_t last_truncate;
    int fail_next;              /* on_commit returns this once when nonzero */
    struct memwal *file;        /* what the decoder reads back */
    size_t n_reads, read_bytes; /* read-back cost */
};

static int rec_read(void *arg, uint64_t off, void *buf, size_t len, size_t *got, struct err *e)
{
    struct rec *r = arg;
    r->n_reads++;
    r->read_bytes += len;
    return memwal_read(r->file, off, buf, len, got, e);
}

static int rec_commit(void *arg, const struct wal_commit *c, struct err *e)
{
    struct rec *r = arg;
    if (r->fail_next) {
        int rc = r->fail_next;
        r->fail_next = 0;
        return ERR(e, rc, "test: refused commit %u-%u", c->first, c->last);
    }
    cr_assert_lt(r->n, (size_t)MAX_EVENTS);
    r->c[r->n++] = *c;
    return 0;
}

static int rec_restart(void *arg, const struct wal_header *h, struct err *e)
{
    struct rec *r = arg;
    (void)e;
    r->n_restarts++;
    r->last_header = *h;
    return 0;
}

static int rec_truncate(void *arg, uint64_t size, struct err *e)
{
    struct rec *r = arg;
    (void)e;
    r->n_truncates++;
    r->last_truncate = size;
    return 0;
}

static struct wal_decoder *rec_decoder(struct rec *r, struct memwal *file)
{
    struct wal_decoder_ops ops = {rec_read, rec_commit, rec_restart, rec_truncate};
    struct err e = {0};
    struct wal_decoder *d;

    memset(r, 0, sizeof(*r));
    r->file = file;
    d = wal_decoder_new(&ops, r, &e);
    cr_assert_not_null(d, "%s", e.msg);
    return d;
}

/* Writes the bytes into file, then reports them to d: the order a FUSE daemon keeps. */
static int apply_write(struct wal_decoder *d, struct memwal *file, uint64_t off, const void *p,
                       size_t len, struct err *e)
{
    memwal_write(file, off, p, len);
    return wal_decoder_wrote(d, off, p, len, e);
}

enum split { SPLIT_NONE, SPLIT_RANDOM, SPLIT_BYTES, SPLIT_COALESCE };

/* Replays ops[from, to) into file and d as a FUSE daemon would see them, writes split as asked. */
static void replay(struct wal_decoder *d, struct memwal *file, const struct walops *ops,
                   size_t from, size_t to, enum split mode, unsigned seed)
{
    struct err e = {0};
    int rc;

    srand(seed);
    for (size_t i = from; i < to; i++) {
        const struct walop *op = &ops->v[i];
        if (op->kind == WALOP_TRUNCATE) {
            memwal_truncate(file, op->off);
            rc = wal_decoder_truncated(d, op->off, &e);
            cr_assert_eq(rc, 0, "%s", e.msg);
            continue;
        }
        if (mode == SPLIT_COALESCE) {
            /* merge the following contiguous writes into one */
            size_t j = i, len = op->len;
            while (j + 1 < to && ops->v[j + 1].kind == WALOP_WRITE &&
                   ops->v[j + 1].off == ops->v[j].off + ops->v[j].len) {
                j++;
                len += ops->v[j].len;
            }
            uint8_t *buf = malloc(len ? len : 1);
            size_t pos = 0;
            for (size_t k = i; k <= j; k++) {
                memcpy(buf + pos, ops->v[k].data, ops->v[k].len);
                pos += ops->v[k].len;
            }
            rc = apply_write(d, file, op->off, buf, len, &e);
            free(buf);
            cr_assert_eq(rc, 0, "%s", e.msg);
            i = j;
            continue;
        }
        size_t pos = 0;
        while (pos < op->len) {
            size_t n = op->len - pos;
            if (mode == SPLIT_RANDOM && n > 1)
                n = 1 + (size_t)rand() % (n < 700 ? n : 700);
            else if (mode == SPLIT_BYTES)
                n = 1;
            rc = apply_write(d, file, op->off + pos, op->data + pos, n, &e);
            cr_assert_eq(rc, 0, "%s", e.msg);
            pos += n;
        }
    }
}

/* A little-endian WAL with its header written: where most tests start. */
static struct walgen *wal_new(uint32_t page_size, uint32_t salt1, uint32_t salt2)
{
    struct walgen *g = walgen_new(page_size, false, salt1, salt2);

    walgen_header(g);
    return g;
}

/* One test's WAL log, an incremental decoder d (records r) over the file f it was fed, and
 * optionally a decoder scan_d (records scan_r) that scanned a file at startup. */
struct fixture {
    struct walgen *g;
    struct memwal f;
    struct rec r;
    struct wal_decoder *d;
    struct rec scan_r;
    struct wal_decoder *scan_d;
};

/* Takes ownership of g. d starts on an empty f and has been fed nothing. */
static struct fixture *fixture_new(struct walgen *g)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    cr_assert_not_null(fx);
    fx->g = g;
    fx->d = rec_decoder(&fx->r, &fx->f);
    return fx;
}

/* Starts over: a fresh d on an empty f. */
static void fixture_restart(struct fixture *fx)
{
    wal_decoder_free(fx->d);
    memwal_free(&fx->f);
    fx->d = rec_decoder(&fx->r, &fx->f);
}

/* Replays g's ops[from, to) into f and d, writes as recorded. */
static void fixture_replay(struct fixture *fx, size_t from, size_t to)
{
    replay(fx->d, &fx->f, walgen_ops(fx->g), from, to, SPLIT_NONE, 0);
}

/* Starts over and feeds the whole log. */
static void fixture_feed(struct fixture *fx)
{
    fixture_restart(fx);
    fixture_replay(fx, 0, walgen_ops(fx->g)->n);
}

/* Replaces scan_d by a fresh decoder that scanned file (borrowed: it must outlive scan_d). */
static void fixture_scan(struct fixture *fx, struct memwal *file)
{
    wal_decoder_free(fx->scan_d);
    fx->scan_d = rec_decoder(&fx->scan_r, file);
    cr_assert_eq(wal_decoder_scan(fx->scan_d, file->len, NULL), 0);
}

static void fixture_free(struct fixture *fx)
{
    wal_decoder_free(fx->scan_d);
    wal_decoder_free(fx->d);
    memwal_free(&fx->f);
    walgen_free(fx->g);
    free(fx);
}

static void expect_commit(const struct rec *r, size_t i, uint32_t first, uint32_t last,
                          uint32_t db_pages)
{
    cr_assert_lt(i, r->n, "commit %zu missing (only %zu)", i, r->n);
    cr_expect_eq(r->c[i].first, first, "commit %zu first %u want %u", i, r->c[i].first, first);
    cr_expect_eq(r->c[i].last, last, "commit %zu last %u want %u", i, r->c[i].last, last);
    cr_expect_eq(r->c[i].db_pages, db_pages, "commit %zu db_pages", i);
}

/* The checksum reported for commit i equals what its commit frame stores in the WAL image. */
static void expect_stored_cksum(struct fixture *fx, size_t i)
{
    const struct wal_commit *c = &fx->r.c[i];
    const uint8_t *img = walgen_image(fx->g)->data;
    uint64_t off = wal_frame_offset(c->page_size, c->last);
    cr_expect_eq(c->cksum1, be32_load(img + off + 16));
    cr_expect_eq(c->cksum2, be32_load(img + off + 20));
    cr_expect_eq(c->first_off, wal_frame_offset(c->page_size, c->first));
    cr_expect_eq(c->n_bytes, (uint64_t)(c->last - c->first + 1) * (24 + c->page_size));
}

Test(wal_decoder, single_page_commit)
{
    struct walgen *g = wal_new(4096, 0x1234, 0x5678);
    struct fixture *fx = fixture_new(g);

    walgen_commit(g, 1, 1);
    fixture_feed(fx);
    cr_assert_eq(fx->r.n_restarts, 1);
    cr_assert_eq(fx->r.n, 1);
    expect_commit(&fx->r, 0, 1, 1, 1);
    expect_stored_cksum(fx, 0);
    cr_expect_eq(fx->r.c[0].salt1, 0x1234u);
    cr_expect_eq(fx->r.c[0].salt2, 0x5678u);
    cr_expect_eq(fx->r.c[0].page_size, 4096u);
    cr_expect_eq(fx->r.c[0].seed1, fx->r.last_header.cksum1);
    cr_expect_eq(fx->r.c[0].seed2, fx->r.last_header.cksum2);
    cr_expect_eq(wal_decoder_committed(fx->d), 1u);
    cr_expect_eq(wal_decoder_committed_end(fx->d), 32u + 4120u);
    cr_expect_eq(wal_decoder_page_size(fx->d), 4096u);
    uint32_t s[2];
    cr_assert(wal_decoder_checksum(fx->d, s));
    cr_expect_eq(s[0], fx->r.c[0].cksum1);
    fixture_free(fx);
}

Test(wal_decoder, multi_page_transactions_and_no_commit_for_open_tail)
{
    struct walgen *g = wal_new(1024, 1, 2);
    struct fixture *fx = fixture_new(g);

    for (uint32_t p = 1; p <= 4; p++)
        walgen_frame(g, p, 0, 0);
    walgen_commit(g, 5, 5);
    walgen_frame(g, 2, 0, 1);
    walgen_commit(g, 6, 6);
    walgen_frame(g, 3, 0, 2); /* open transaction: never committed */
    walgen_frame(g, 4, 0, 2);
    fixture_feed(fx);
    cr_assert_eq(fx->r.n, 2);
    expect_commit(&fx->r, 0, 1, 5, 5);
    expect_commit(&fx->r, 1, 6, 7, 6);
    expect_stored_cksum(fx, 1);
    cr_expect_eq(wal_decoder_committed(fx->d), 7u);
    fixture_free(fx);
}

Test(wal_decoder, big_endian_checksums)
{
    struct walgen *be = walgen_new(4096, true, 9, 9);
    struct walgen *le = wal_new(4096, 9, 9);
    struct fixture *fx = fixture_new(be);

    walgen_header(be);
    for (int i = 0; i < 2; i++) {
        walgen_frame(be, 1, 0, 0);
        walgen_commit(be, 2, 2);
        walgen_frame(le, 1, 0, 0);
        walgen_commit(le, 2, 2);
    }
    /* the two files differ in their checksums: the test means something */
    cr_assert_eq(be32_load(walgen_image(be)->data), WAL_MAGIC_BE);
    cr_assert_neq(be32_load(walgen_image(be)->data + 32 + 16),
                  be32_load(walgen_image(le)->data + 32 + 16));
    fixture_feed(fx);
    cr_assert_eq(fx->r.n, 2);
    expect_commit(&fx->r, 0, 1, 2, 2);
    expect_commit(&fx->r, 1, 3, 4, 2);
    cr_expect(fx->r.c[0].big_endian);
    cr_expect(fx->r.last_header.big_endian);
    expect_stored_cksum(fx, 1);

    /* a BE file whose magic says LE validates nothing */
    walgen_image(be)->data[3] = 0x82;
    {
        uint8_t *h = walgen_image(be)->data;
        uint32_t s[2] = {0, 0};
        wal_checksum(false, h, 24, s);
        be32_store(h + 24, s[0]);
        be32_store(h + 28, s[1]);
    }
    fixture_scan(fx, walgen_image(be));
    cr_expect_eq(fx->scan_r.n_restarts, 1);
    cr_expect_eq(fx->scan_r.n, 0);
    fixture_free(fx);
    walgen_free(le);
}

/* SQLite's spill path: a page rewritten in place, later frames with zero salts/checksums, the
 * commit frame appended unsalted, then the headers rewritten in order, commit header last. */
Test(wal_decoder, checksum_rewrite_after_in_place_page_rewrite)
{
    struct walgen *g = wal_new(1024, 77, 88);
    struct fixture *fx = fixture_new(g);

    walgen_commit(g, 1, 1);       /* tx 1: frame 1 */
    walgen_frame(g, 2, 0, 0);     /* tx 2: frames 2.. */
    walgen_frame(g, 3, 0, 0);     /* frame 3 */
    walgen_rewrite_page(g, 2, 5); /* frame 2's page changed: iReCksum = 2 */
    walgen_frame_unsalted(g, 4, 0, 0);
    walgen_frame_unsalted(g, 5, 5, 0); /* commit frame, unsalted */
    size_t before_fix = walgen_ops(g)->n;
    walgen_rewrite_checksums(g, 2, 5);

    fixture_feed(fx);
    cr_assert_eq(fx->r.n, 2);
    expect_commit(&fx->r, 0, 1, 1, 1);
    expect_commit(&fx->r, 1, 2, 5, 5);
    expect_stored_cksum(fx, 1);

    /* before the rewrite of the checksums nothing of tx 2 is committed */
    fixture_restart(fx);
    fixture_replay(fx, 0, before_fix);
    cr_expect_eq(fx->r.n, 1);
    cr_expect_eq(wal_decoder_committed(fx->d), 1u);
    /* ... and the rest completes it */
    fixture_replay(fx, before_fix, walgen_ops(g)->n);
    cr_assert_eq(fx->r.n, 2);
    expect_commit(&fx->r, 1, 2, 5, 5);
    fixture_free(fx);
}

Test(wal_decoder, rollback_overwrites_spilled_frames)
{
    struct walgen *g = wal_new(512, 3, 4);
    struct fixture *fx = fixture_new(g);

    walgen_commit(g, 1, 1);
    walgen_frame(g, 2, 0, 0); /* spilled, then rolled back */
    walgen_frame(g, 3, 0, 0);
    walgen_frame(g, 4, 0, 0);
    walgen_rollback_to(g, 1);
    walgen_frame(g, 7, 0, 9);
    walgen_commit(g, 8, 8);
    fixture_feed(fx);
    cr_assert_eq(fx->r.n, 2);
    expect_commit(&fx->r, 0, 1, 1, 1);
    expect_commit(&fx->r, 1, 2, 3, 8);
    /* frame 4 (stale, salted, chained from the old frame 3) is not part of anything */
    cr_expect_eq(wal_decoder_committed(fx->d), 3u);
    fixture_free(fx);
}

Test(wal_decoder, sync_padding_frames_are_one_frame_commits)
{
    struct walgen *g = wal_new(1024, 5, 6);
    struct fixture *fx = fixture_new(g);

    walgen_frame(g, 1, 0, 0);
    walgen_commit(g, 2, 3);
    walgen_commit(g, 2, 3); /* padding copies */
    walgen_commit(g, 2, 3);
    fixture_feed(fx);
    cr_assert_eq(fx->r.n, 3);
    expect_commit(&fx->r, 0, 1, 2, 3);
    expect_commit(&fx->r, 1, 3, 3, 3);
    expect_commit(&fx->r, 2, 4, 4, 3);
    fixture_free(fx);
}

Test(wal_decoder, torn_last_frame_is_not_committed)
{
    struct walgen *g = wal_new(4096, 1, 1);
    struct fixture *fx = fixture_new(g);

    walgen_frame(g, 1, 0, 0);
    walgen_commit(g, 2, 2);
    walgen_frame(g, 3, 0, 0);
    walgen_commit(g, 4, 4);
    /* replay everything but the last page write, then half of it */
    const struct walops *ops = walgen_ops(g);
    const struct walop *last = &ops->v[ops->n - 1];
    size_t half = last->len / 2;
    fixture_replay(fx, 0, ops->n - 1);
    cr_assert_eq(apply_write(fx->d, &fx->f, last->off, last->data, half, NULL), 0);
    cr_expect_eq(fx->r.n, 1);
    expect_commit(&fx->r, 0, 1, 2, 2);
    /* a scan of the torn file agrees */
    fixture_scan(fx, &fx->f);
    cr_expect_eq(fx->scan_r.n, 1);
    cr_expect_eq(wal_decoder_committed(fx->scan_d), 2u);
    /* the rest of the page arrives: now it commits */
    cr_assert_eq(
        apply_write(fx->d, &fx->f, last->off + half, last->data + half, last->len - half, NULL), 0);
    cr_assert_eq(fx->r.n, 2);
    expect_commit(&fx->r, 1, 3, 4, 4);
    fixture_free(fx);
}

/* Three transactions of two frames; a flipped bit anywhere in tx 2 (except unused header
 * bytes) stops everything from tx 2 on, in the incremental decoder and in a scan. */
Test(wal_decoder, bit_flips_stop_the_chain)
{
    const uint32_t ps = 512;
    const uint64_t fsz = 24 + ps;
    /* byte offsets inside frame 3 (first frame of tx 2) and frame 4 (its commit frame) */
    const uint64_t f3 = 32 + 2 * fsz, f4 = 32 + 3 * fsz;
    const uint64_t spots[] = {f3 + 0,  f3 + 3,  f3 + 5,  f3 + 8,   f3 + 13,
                              f3 + 16, f3 + 23, f3 + 24, f3 + 300, f3 + 535,
                              f4 + 7,  f4 + 10, f4 + 20, f4 + 24,  f4 + 535};
    for (size_t i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
        for (unsigned bit = 0; bit < 8; bit += 7) {
            struct walgen *g = wal_new(ps, 42, 43);
            struct fixture *fx = fixture_new(g);

            for (uint32_t t = 0; t < 3; t++) {
                walgen_frame(g, 1, 0, t);
                walgen_commit(g, 2, 2 + t);
            }
            walgen_flip_bit(g, spots[i], bit);
            fixture_feed(fx);
            cr_expect_eq(fx->r.n, 1, "flip at %llu bit %u: %zu commits",
                         (unsigned long long)spots[i], bit, fx->r.n);
            cr_expect_eq(wal_decoder_committed(fx->d), 2u);
            fixture_scan(fx, walgen_image(g));
            cr_expect_eq(fx->scan_r.n, 1, "scan: flip at %llu", (unsigned long long)spots[i]);
            fixture_free(fx);
        }
    }
}

Test(wal_decoder, foreign_salt_frame_is_not_committed)
{
    struct walgen *g = wal_new(4096, 10, 20);
    struct fixture *fx = fixture_new(g);

    walgen_commit(g, 1, 1);
    walgen_commit(g, 1, 1);
    walgen_flip_bit(g, 32 + 4120 + 8, 0); /* salt-1 of frame 2 */
    fixture_feed(fx);
    cr_expect_eq(fx->r.n, 1);
    fixture_free(fx);
}

Test(wal_decoder, restart_with_new_salts_counts_from_one)
{
    struct walgen *g = wal_new(1024, 100, 200);
    struct fixture *fx = fixture_new(g);

    for (uint32_t i = 0; i < 3; i++) {
        walgen_frame(g, 1, 0, i);
        walgen_commit(g, 2, 2);
    }
    walgen_restart(g, 101, 999); /* checkpointed; new salts; old frames 3..6 stay stale */
    walgen_commit(g, 3, 3);
    fixture_feed(fx);
    cr_expect_eq(fx->r.n_restarts, 2);
    cr_assert_eq(fx->r.n, 4);
    expect_commit(&fx->r, 2, 5, 6, 2);
    expect_commit(&fx->r, 3, 1, 1, 3);
    cr_expect_eq(fx->r.c[3].salt1, 101u);
    cr_expect_eq(fx->r.c[3].salt2, 999u);
    cr_expect_eq(fx->r.c[3].ckpt_seq, 1u);
    cr_expect_eq(fx->r.last_header.salt2, 999u);
    cr_expect_eq(wal_decoder_committed(fx->d), 1u);
    /* a scan sees only the new sequence (old frames have old salts) */
    fixture_scan(fx, walgen_image(g));
    cr_expect_eq(fx->scan_r.n_restarts, 1);
    cr_assert_eq(fx->scan_r.n, 1);
    expect_commit(&fx->scan_r, 0, 1, 1, 3);
    fixture_free(fx);
}

Test(wal_decoder, identical_header_rewrite_is_not_a_restart)
{
    struct walgen *g = wal_new(1024, 100, 200);
    struct fixture *fx = fixture_new(g);

    walgen_frame(g, 1, 0, 0); /* spilled, rolled back, header written again */
    walgen_rollback_to(g, 0);
    walgen_header(g);
    walgen_commit(g, 1, 1);
    fixture_feed(fx);
    cr_expect_eq(fx->r.n_restarts, 1);
    cr_assert_eq(fx->r.n, 1);
    expect_commit(&fx->r, 0, 1, 1, 1);
    fixture_free(fx);
}

Test(wal_decoder, truncation_ends_sequence_only_below_committed_end)
{
    struct walgen *g = wal_new(1024, 1, 2);
    struct fixture *fx = fixture_new(g);
    uint64_t fsz = 24 + 1024;

    walgen_commit(g, 1, 1);
    walgen_commit(g, 2, 2);
    walgen_truncate(g, 32 + 2 * fsz);  /* exactly the committed end: silent */
    walgen_truncate(g, 32 + 10 * fsz); /* extension: silent */
    fixture_feed(fx);
    cr_expect_eq(fx->r.n_truncates, 0);
    cr_expect_eq(wal_decoder_committed(fx->d), 2u);
    cr_assert_eq(wal_decoder_truncated(fx->d, 32 + fsz, NULL), 0); /* below: ends it */
    cr_expect_eq(fx->r.n_truncates, 1);
    cr_expect_eq(fx->r.last_truncate, 32 + fsz);
    cr_expect_eq(wal_decoder_committed(fx->d), 0u);
    cr_expect_eq(wal_decoder_page_size(fx->d), 0u);
    struct wal_header h;
    cr_expect(!wal_decoder_header(fx->d, &h));
    /* frames written without a header are ignored */
    cr_assert_eq(wal_decoder_wrote(fx->d, 32, fx->f.data + 32, (size_t)fsz, NULL), 0);
    cr_expect_eq(fx->r.n, 2);

    /* truncate to 0, then a new WAL: restart, frames from 1 */
    walgen_truncate(g, 0);
    walgen_restart(g, 5, 6);
    walgen_commit(g, 3, 3);
    fixture_feed(fx);
    cr_expect_eq(fx->r.n_truncates, 1);
    cr_expect_eq(fx->r.last_truncate, 0u);
    cr_expect_eq(fx->r.n_restarts, 2);
    cr_assert_eq(fx->r.n, 3);
    expect_commit(&fx->r, 2, 1, 1, 3);
    fixture_free(fx);
}

/* A mixed history: commits, a spill with checksum rewrite, rollback, padding, restart. */
static struct walgen *mixed_history(uint32_t ps, bool be)
{
    struct walgen *g = walgen_new(ps, be, 0xdead, 0xbeef);

    walgen_header(g);
    walgen_commit(g, 1, 1);
    for (uint32_t i = 0; i < 3; i++) {
        walgen_frame(g, 2, 0, i);
        walgen_frame(g, 3, 0, i);
        walgen_commit(g, 1, 3);
    }
    uint32_t a = walgen_frame(g, 4, 0, 0);
    walgen_frame(g, 5, 0, 0);
    walgen_rewrite_page(g, a, 7);
    walgen_frame_unsalted(g, 6, 0, 0);
    uint32_t c = walgen_frame_unsalted(g, 1, 6, 0);
    walgen_rewrite_checksums(g, a, c);
    uint32_t keep = walgen_nframes(g);
    walgen_frame(g, 9, 0, 0);
    walgen_frame(g, 10, 0, 0);
    walgen_rollback_to(g, keep);
    walgen_frame(g, 2, 0, 3);
    walgen_commit(g, 1, 6);
    walgen_commit(g, 1, 6); /* padding */
    walgen_restart(g, 0xdeae, 0x1234);
    walgen_frame(g, 2, 0, 4);
    walgen_commit(g, 1, 6);
    walgen_frame(g, 3, 0, 5); /* open tail */
    return g;
}

static void same_commits(const struct rec *a, const struct rec *b, const char *what)
{
    cr_assert_eq(a->n, b->n, "%s: %zu vs %zu commits", what, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        cr_expect_eq(a->c[i].first, b->c[i].first, "%s: commit %zu", what, i);
        cr_expect_eq(a->c[i].last, b->c[i].last, "%s: commit %zu", what, i);
        cr_expect_eq(a->c[i].db_pages, b->c[i].db_pages, "%s: commit %zu", what, i);
        cr_expect_eq(a->c[i].salt1, b->c[i].salt1, "%s: commit %zu", what, i);
        cr_expect_eq(a->c[i].cksum1, b->c[i].cksum1, "%s: commit %zu", what, i);
        cr_expect_eq(a->c[i].cksum2, b->c[i].cksum2, "%s: commit %zu", what, i);
    }
}

/* The whole log of fx->g, split as asked, into a fresh decoder and file: the same commits as
 * fx->r and the same file as the WAL image. */
static void expect_same_when_split(struct fixture *fx, enum split mode, unsigned seed,
                                   const char *what)
{
    struct rec *r = malloc(sizeof(*r));
    struct memwal f = {0};
    struct wal_decoder *d = rec_decoder(r, &f);

    replay(d, &f, walgen_ops(fx->g), 0, walgen_ops(fx->g)->n, mode, seed);
    same_commits(&fx->r, r, what);
    cr_expect_eq(f.len, walgen_image(fx->g)->len, "%s: file length", what);
    wal_decoder_free(d);
    memwal_free(&f);
    free(r);
}

Test(wal_decoder, mixed_history_expected_commits)
{
    struct fixture *fx = fixture_new(mixed_history(1024, false));

    fixture_feed(fx);
    cr_expect_eq(fx->r.n_restarts, 2);
    cr_assert_eq(fx->r.n, 8, "%zu commits", fx->r.n);
    expect_commit(&fx->r, 0, 1, 1, 1);
    expect_commit(&fx->r, 1, 2, 4, 3);
    expect_commit(&fx->r, 3, 8, 10, 3);
    expect_commit(&fx->r, 4, 11, 14, 6);
    expect_commit(&fx->r, 5, 15, 16, 6);
    expect_commit(&fx->r, 6, 17, 17, 6);
    expect_commit(&fx->r, 7, 1, 2, 6);
    for (size_t i = 0; i < fx->r.n; i++)
        cr_expect(!fx->r.c[i].rechained, "commit %zu rechained", i);
    fixture_free(fx);
}

Test(wal_decoder, random_splits_give_the_same_commits)
{
    const uint32_t sizes[] = {512, 4096, 65536};
    for (size_t s = 0; s < 3; s++) {
        for (int be = 0; be <= 1; be++) {
            struct fixture *fx = fixture_new(mixed_history(sizes[s], be));

            fixture_feed(fx);
            cr_assert_eq(fx->r.n, 8);
            for (unsigned seed = 1; seed <= 4; seed++)
                expect_same_when_split(fx, SPLIT_RANDOM, seed, "random");
            expect_same_when_split(fx, SPLIT_COALESCE, 0, "coalesced");
            if (sizes[s] == 512)
                expect_same_when_split(fx, SPLIT_BYTES, 0, "bytes");
            fixture_free(fx);
        }
    }
}

Test(wal_decoder, scan_equals_incremental_and_resumes)
{
    struct walgen *g = wal_new(2048, 8, 9);
    struct fixture *fx = fixture_new(g);

    for (uint32_t t = 0; t < 50; t++) {
        for (uint32_t p = 0; p < t % 7; p++)
            walgen_frame(g, 2 + p, 0, t);
        walgen_commit(g, 1, 10 + t);
    }
    walgen_frame(g, 2, 0, 99); /* open tail */
    fixture_feed(fx);
    fixture_scan(fx, walgen_image(g));
    same_commits(&fx->r, &fx->scan_r, "scan");
    cr_expect_eq(fx->scan_r.n_restarts, 1);
    cr_expect_eq(wal_decoder_committed(fx->scan_d), wal_decoder_committed(fx->d));
    uint32_t s1[2], s2[2];
    cr_assert(wal_decoder_checksum(fx->d, s1));
    cr_assert(wal_decoder_checksum(fx->scan_d, s2));
    cr_expect_eq(s1[0], s2[0]);
    cr_expect_eq(s1[1], s2[1]);
    /* the scanned decoder continues incrementally */
    size_t before = walgen_ops(g)->n;
    walgen_commit(g, 1, 77);
    replay(fx->scan_d, walgen_image(g), walgen_ops(g), before, walgen_ops(g)->n, SPLIT_NONE, 0);
    cr_assert_eq(fx->scan_r.n, fx->r.n + 1);
    const struct wal_commit *last = &fx->scan_r.c[fx->scan_r.n - 1];
    cr_expect_eq(last->db_pages, 77u);
    cr_expect_eq(last->first, wal_decoder_committed(fx->d) + 1);
    fixture_free(fx);
}

Test(wal_decoder, scan_of_short_or_invalid_file_has_no_header)
{
    struct memwal f = {0};
    struct rec r;
    struct wal_decoder *d = rec_decoder(&r, &f);
    uint8_t junk[100];

    cr_assert_eq(wal_decoder_scan(d, 0, NULL), 0);
    memset(junk, 0x5a, sizeof(junk));
    memwal_write(&f, 0, junk, sizeof(junk));
    cr_assert_eq(wal_decoder_scan(d, f.len, NULL), 0);
    cr_expect_eq(r.n_restarts, 0);
    cr_expect_eq(wal_decoder_page_size(d), 0u);
    cr_expect_eq(wal_decoder_committed_end(d), 0u);
    wal_decoder_free(d);
    memwal_free(&f);
}

Test(wal_decoder, commit_callback_error_is_reported_again)
{
    struct walgen *g = wal_new(1024, 1, 2);
    struct fixture *fx = fixture_new(g);
    struct err e = {0};
    const struct walops *ops;

    walgen_frame(g, 1, 0, 0);
    walgen_commit(g, 2, 2);
    ops = walgen_ops(g);
    fx->r.fail_next = ENOSPC;
    for (size_t i = 0; i < ops->n; i++) {
        const struct walop *op = &ops->v[i];
        int rc = apply_write(fx->d, &fx->f, op->off, op->data, op->len, &e);
        if (i + 1 < ops->n)
            cr_assert_eq(rc, 0);
        else
            cr_assert_eq(rc, ENOSPC);
    }
    cr_expect(strstr(e.msg, "refused") != NULL, "%s", e.msg);
    cr_expect_eq(fx->r.n, 0);
    cr_expect_eq(wal_decoder_committed(fx->d), 0u);
    cr_assert_eq(wal_decoder_recheck(fx->d, NULL), 0);
    cr_assert_eq(fx->r.n, 1);
    expect_commit(&fx->r, 0, 1, 2, 2);
    cr_assert_eq(wal_decoder_recheck(fx->d, NULL), 0);
    cr_expect_eq(fx->r.n, 1);
    fixture_free(fx);
}

/* Non-commit writes read nothing back; each commit reads back only its own earlier frames. */
Test(wal_decoder, read_back_cost)
{
    struct walgen *g = wal_new(4096, 1, 2);
    struct fixture *fx = fixture_new(g);
    const struct walops *ops;
    size_t done = 0;

    for (uint32_t t = 0; t < 20; t++) {
        for (uint32_t p = 0; p < 3; p++)
            walgen_frame(g, 2 + p, 0, t);
        walgen_commit(g, 1, 5);
        ops = walgen_ops(g);
        size_t reads_before = fx->r.n_reads, bytes_before = fx->r.read_bytes;
        for (; done < ops->n; done++) {
            const struct walop *op = &ops->v[done];
            size_t reads = fx->r.n_reads;
            cr_assert_eq(apply_write(fx->d, &fx->f, op->off, op->data, op->len, NULL), 0);
            if (done + 1 < ops->n)
                cr_assert_eq(fx->r.n_reads, reads, "op %zu is not a commit but read back", done);
        }
        cr_expect_eq(fx->r.n, t + 1);
        /* at most: the 3 earlier frames + the commit frame's header */
        cr_expect_leq(fx->r.read_bytes - bytes_before, 3 * 4120 + 24, "tx %u read %zu", t,
                      fx->r.read_bytes - bytes_before);
        cr_expect_leq(fx->r.n_reads - reads_before, 2);
    }
    fixture_free(fx);
}

/* A corrupt frame is not re-read on every later commit. */
Test(wal_decoder, corrupt_tail_is_not_reread_on_every_commit)
{
    struct walgen *g = wal_new(1024, 1, 2);
    struct fixture *fx = fixture_new(g);

    walgen_commit(g, 1, 1);
    walgen_frame(g, 2, 0, 0);
    walgen_commit(g, 1, 2);
    walgen_flip_bit(g, 32 + 1048 + 100, 3); /* frame 2's page */
    for (int t = 0; t < 200; t++) {
        walgen_frame(g, 2, 0, (uint32_t)t);
        walgen_commit(g, 1, 2);
    }
    fixture_feed(fx);
    cr_expect_eq(fx->r.n, 1);
    /* the first failed validation reads ~2 frames; later commits must not re-read them all */
    cr_expect_lt(fx->r.read_bytes, (size_t)20 * 1048, "read back %zu bytes", fx->r.read_bytes);
    /* rewriting the bad frame correctly (as SQLite never would) revives the chain */
    fixture_free(fx);
}

/* SQLite 3.40.1 after ROLLBACK TO of a spilled savepoint: the commit's frames stay zero-salted
 * (never rewritten) and the next transaction chains from a stale value. */
static struct walgen *sqlite_bug_history(void)
{
    struct walgen *g = wal_new(1024, 0x51, 0x52);

    walgen_frame(g, 1, 0, 0);
    walgen_commit(g, 2, 2);            /* tx 1: frames 1-2 */
    walgen_frame_unsalted(g, 3, 0, 0); /* tx 2: frames 3-4, zero-salted, never rewritten */
    walgen_frame_unsalted(g, 1, 3, 0);
    walgen_set_chain(g, 0x1234567, 0x89abcdef); /* the stale seed SQLite picked up */
    walgen_frame(g, 2, 0, 1);                   /* tx 3: frames 5-6 */
    walgen_commit(g, 3, 3);
    walgen_commit(g, 1, 3); /* tx 4: frame 7 */
    return g;
}

Test(wal_decoder, sqlite_bug_zero_salted_commit_is_rechained)
{
    struct walgen *g = sqlite_bug_history();
    struct fixture *fx = fixture_new(g);
    const struct wal_commit *c = fx->r.c;

    fixture_feed(fx);
    cr_assert_eq(fx->r.n, 4, "%zu commits", fx->r.n);
    expect_commit(&fx->r, 0, 1, 2, 2);
    expect_commit(&fx->r, 1, 3, 4, 3);
    expect_commit(&fx->r, 2, 5, 6, 3);
    expect_commit(&fx->r, 3, 7, 7, 3);
    cr_expect(!c[0].rechained);
    for (size_t i = 1; i < 4; i++) {
        cr_expect(c[i].rechained, "commit %zu", i);
        cr_expect_eq(c[i].prev1, c[i - 1].cksum1);
        cr_expect_eq(c[i].prev2, c[i - 1].cksum2);
    }
    /* rechaining every reported frame gives a WAL that validates strictly */
    struct memwal shipped = {0};
    memwal_write(&shipped, 0, walgen_image(g)->data, walgen_image(g)->len);
    for (size_t i = 1; i < 4; i++) {
        uint32_t s[2] = {c[i].prev1, c[i].prev2};
        wal_frames_rechain(false, c[i].salt1, c[i].salt2, 1024, shipped.data + c[i].first_off,
                           c[i].last - c[i].first + 1, s);
        cr_expect_eq(s[0], c[i].cksum1);
        cr_expect_eq(s[1], c[i].cksum2);
    }
    fixture_scan(fx, &shipped);
    same_commits(&fx->r, &fx->scan_r, "shipped");
    /* a scan of the original never applies the rule */
    fixture_scan(fx, walgen_image(g));
    cr_expect_eq(fx->scan_r.n, 1);
    /* the same in any split */
    for (unsigned seed = 1; seed <= 6; seed++)
        expect_same_when_split(fx, seed % 3 == 0 ? SPLIT_COALESCE : SPLIT_RANDOM, seed, "split");
    fixture_free(fx);
    memwal_free(&shipped);
}

Test(wal_decoder, zero_salted_commit_without_proof_is_not_reported)
{
    struct walgen *g = wal_new(1024, 0x51, 0x52);
    struct fixture *fx = fixture_new(g);

    walgen_commit(g, 1, 1);
    walgen_frame_unsalted(g, 3, 0, 0); /* a commit torn between frame write and rewrite */
    walgen_frame_unsalted(g, 1, 3, 0);
    fixture_feed(fx);
    cr_expect_eq(fx->r.n, 1);
    fixture_free(fx);

    /* a stale, correctly salted frame already after it is no proof */
    g = wal_new(1024, 0x51, 0x52);
    fx = fixture_new(g);
    walgen_commit(g, 1, 1);
    walgen_frame(g, 2, 0, 0); /* frames 2-4 spilled then rolled back: stale, salted */
    walgen_frame(g, 3, 0, 0);
    walgen_frame(g, 4, 0, 0);
    walgen_rollback_to(g, 1);
    walgen_frame_unsalted(g, 3, 0, 1);
    walgen_frame_unsalted(g, 1, 3, 1); /* frame 3; frame 4 still the stale one */
    fixture_feed(fx);
    cr_expect_eq(fx->r.n, 1);
    fixture_free(fx);
}

Test(wal_decoder, sqlite_bug_commit_settled_by_restart)
{
    struct walgen *g = wal_new(1024, 0x51, 0x52);
    struct fixture *fx = fixture_new(g);

    walgen_commit(g, 1, 1);
    walgen_frame_unsalted(g, 3, 0, 0);
    walgen_frame_unsalted(g, 1, 3, 0);
    walgen_restart(g, 0x53, 0x54); /* checkpointed (it was committed), restarted */
    walgen_commit(g, 2, 3);
    fixture_feed(fx);
    cr_assert_eq(fx->r.n, 3);
    expect_commit(&fx->r, 1, 2, 3, 3);
    cr_expect(fx->r.c[1].rechained);
    cr_expect_eq(fx->r.c[1].salt1, 0x51u);
    expect_commit(&fx->r, 2, 1, 1, 3);
    cr_expect(!fx->r.c[2].rechained, "the new sequence chains normally");
    cr_expect_eq(fx->r.n_restarts, 2);
    fixture_free(fx);
}
