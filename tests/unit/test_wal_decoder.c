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

enum split { SPLIT_NONE, SPLIT_RANDOM, SPLIT_BYTES, SPLIT_COALESCE };

/* Replays ops into file and d as a FUSE daemon would see them, writes split as asked. */
static void replay(struct wal_decoder *d, struct memwal *file, const struct walops *ops,
                   size_t n_ops, enum split mode, unsigned seed)
{
    struct err e = {0};
    int rc;

    srand(seed);
    for (size_t i = 0; i < n_ops; i++) {
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
            while (j + 1 < n_ops && ops->v[j + 1].kind == WALOP_WRITE &&
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
            memwal_write(file, op->off, buf, len);
            rc = wal_decoder_wrote(d, op->off, buf, len, &e);
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
            memwal_write(file, op->off + pos, op->data + pos, n);
            rc = wal_decoder_wrote(d, op->off + pos, op->data + pos, n, &e);
            cr_assert_eq(rc, 0, "%s", e.msg);
            pos += n;
        }
    }
}

/* Feeds the whole walgen log into a fresh decoder. */
static struct wal_decoder *feed(struct rec *r, struct memwal *file, struct walgen *g,
                                enum split mode, unsigned seed)
{
    struct wal_decoder *d;

    memset(file, 0, sizeof(*file));
    d = rec_decoder(r, file);
    replay(d, file, walgen_ops(g), walgen_ops(g)->n, mode, seed);
    return d;
}

static void expect_commit(const struct rec *r, size_t i, uint32_t first, uint32_t last,
                          uint32_t db_pages)
{
    cr_assert_lt(i, r->n, "commit %zu missing (only %zu)", i, r->n);
    cr_expect_eq(r->c[i].first, first, "commit %zu first %u want %u", i, r->c[i].first, first);
    cr_expect_eq(r->c[i].last, last, "commit %zu last %u want %u", i, r->c[i].last, last);
    cr_expect_eq(r->c[i].db_pages, db_pages, "commit %zu db_pages", i);
}

/* The checksum reported equals what the commit frame stores. */
static void expect_stored_cksum(const struct rec *r, size_t i, const struct memwal *img)
{
    const struct wal_commit *c = &r->c[i];
    uint64_t off = wal_frame_offset(c->page_size, c->last);
    cr_expect_eq(c->cksum1, be32_load(img->data + off + 16));
    cr_expect_eq(c->cksum2, be32_load(img->data + off + 20));
    cr_expect_eq(c->first_off, wal_frame_offset(c->page_size, c->first));
    cr_expect_eq(c->n_bytes, (uint64_t)(c->last - c->first + 1) * (24 + c->page_size));
}

Test(wal_decoder, single_page_commit)
{
    struct walgen *g = walgen_new(4096, false, 0x1234, 0x5678);
    struct memwal f;
    struct rec r;
    struct wal_decoder *d;

    walgen_header(g);
    walgen_commit(g, 1, 1);
    d = feed(&r, &f, g, SPLIT_NONE, 0);
    cr_assert_eq(r.n_restarts, 1);
    cr_assert_eq(r.n, 1);
    expect_commit(&r, 0, 1, 1, 1);
    expect_stored_cksum(&r, 0, walgen_image(g));
    cr_expect_eq(r.c[0].salt1, 0x1234u);
    cr_expect_eq(r.c[0].salt2, 0x5678u);
    cr_expect_eq(r.c[0].page_size, 4096u);
    cr_expect_eq(r.c[0].seed1, r.last_header.cksum1);
    cr_expect_eq(r.c[0].seed2, r.last_header.cksum2);
    cr_expect_eq(wal_decoder_committed(d), 1u);
    cr_expect_eq(wal_decoder_committed_end(d), 32u + 4120u);
    cr_expect_eq(wal_decoder_page_size(d), 4096u);
    uint32_t s[2];
    cr_assert(wal_decoder_checksum(d, s));
    cr_expect_eq(s[0], r.c[0].cksum1);
    wal_decoder_free(d);
    memwal_free(&f);
    walgen_free(g);
}

Test(wal_decoder, multi_page_transactions_and_no_commit_for_open_tail)
{
    struct walgen *g = walgen_new(1024, false, 1, 2);
    struct memwal f;
    struct rec r;
    struct wal_decoder *d;

    walgen_header(g);
    for (uint32_t p = 1; p <= 4; p++)
        walgen_frame(g, p, 0, 0);
    walgen_commit(g, 5, 5);
    walgen_frame(g, 2, 0, 1);
    walgen_commit(g, 6, 6);
    walgen_frame(g, 3, 0, 2); /* open transaction: never committed */
    walgen_frame(g, 4, 0, 2);
    d = feed(&r, &f, g, SPLIT_NONE, 0);
    cr_assert_eq(r.n, 2);
    expect_commit(&r, 0, 1, 5, 5);
    expect_commit(&r, 1, 6, 7, 6);
    expect_stored_cksum(&r, 1, walgen_image(g));
    cr_expect_eq(wal_decoder_committed(d), 7u);
    wal_decoder_free(d);
    memwal_free(&f);
    walgen_free(g);
}

Test(wal_decoder, big_endian_checksums)
{
    struct walgen *be = walgen_new(4096, true, 9, 9);
    struct walgen *le = walgen_new(4096, false, 9, 9);
    struct memwal f;
    struct rec r;
    struct wal_decoder *d;

    walgen_header(be);
    walgen_header(le);
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
    d = feed(&r, &f, be, SPLIT_NONE, 0);
    cr_assert_eq(r.n, 2);
    expect_commit(&r, 0, 1, 2, 2);
    expect_commit(&r, 1, 3, 4, 2);
    cr_expect(r.c[0].big_endian);
    cr_expect(r.last_header.big_endian);
    expect_stored_cksum(&r, 1, walgen_image(be));
    wal_decoder_free(d);
    memwal_free(&f);

    /* a BE file whose magic says LE validates nothing */
    walgen_image(be)->data[3] = 0x82;
    {
        uint8_t *h = walgen_image(be)->data;
        uint32_t s[2] = {0, 0};
        wal_checksum(false, h, 24, s);
        be32_store(h + 24, s[0]);
        be32_store(h + 28, s[1]);
    }
    d = rec_decoder(&r, walgen_image(be));
    cr_assert_eq(wal_decoder_scan(d, walgen_image(be)->len, NULL), 0);
    cr_expect_eq(r.n_restarts, 1);
    cr_expect_eq(r.n, 0);
    wal_decoder_free(d);
    walgen_free(be);
    walgen_free(le);
}

/* SQLite's spill path: a page rewritten in place, later frames with zero salts/checksums, the
 * commit frame appended unsalted, then the headers rewritten in order, commit header last. */
Test(wal_decoder, checksum_rewrite_after_in_place_page_rewrite)
{
    struct walgen *g = walgen_new(1024, false, 77, 88);
    struct memwal f;
    struct rec r;
    struct wal_decoder *d;

    walgen_header(g);
    walgen_commit(g, 1, 1);       /* tx 1: frame 1 */
    walgen_frame(g, 2, 0, 0);     /* tx 2: frames 2.. */
    walgen_frame(g, 3, 0, 0);     /* frame 3 */
    walgen_rewrite_page(g, 2, 5); /* frame 2's page changed: iReCksum = 2 */
    walgen_frame_unsalted(g, 4, 0, 0);
    walgen_frame_unsalted(g, 5, 5, 0); /* commit frame, unsalted */
    size_t before_fix = walgen_ops(g)->n;
    walgen_rewrite_checksums(g, 2, 5);

    d = feed(&r, &f, g, SPLIT_NONE, 0);
    cr_assert_eq(r.n, 2);
    expect_commit(&r, 0, 1, 1, 1);
    expect_commit(&r, 1, 2, 5, 5);
    expect_stored_cksum(&r, 1, walgen_image(g));
    wal_decoder_free(d);
    memwal_free(&f);

    /* before the rewrite of the checksums nothing of tx 2 is committed */
    memset(&f, 0, sizeof(f));
    d = rec_decoder(&r, &f);
    replay(d, &f, walgen_ops(g), before_fix, SPLIT_NONE, 0);
    cr_expect_eq(r.n, 1);
    cr_expect_eq(wal_decoder_committed(d), 1u);
    /* ... and the rest completes it */
    {
        struct walops rest = *walgen_ops(g);
        rest.v += before_fix;
        rest.n -= before_fix;
        replay(d, &f, &rest, rest.n, SPLIT_NONE, 0);
    }
    cr_assert_eq(r.n, 2);
    expect_commit(&r, 1, 2, 5, 5);
    wal_decoder_free(d);
    memwal_free(&f);
    walgen_free(g);
}

Test(wal_decoder, rollback_overwrites_spilled_frames)
{
    struct walgen *g = walgen_new(512, false, 3, 4);
    struct memwal f;
    struct rec r;
    struct wal_decoder *d;

    walgen_header(g);
    walgen_commit(g, 1, 1);
    walgen_frame(g, 2, 0, 0); /* spilled, then rolled back */
    walgen_frame(g, 3, 0, 0);
    walgen_frame(g, 4, 0, 0);
    walgen_rollback_to(g, 1);
    walgen_frame(g, 7, 0, 9);
    walgen_commit(g, 8, 8);
    d = feed(&r, &f, g, SPLIT_NONE, 0);
    cr_assert_eq(r.n, 2);
    expect_commit(&r, 0, 1, 1, 1);
    expect_commit(&r, 1, 2, 3, 8);
    /* frame 4 (stale, salted, chained from the old frame 3) is not part of anything */
    cr_expect_eq(wal_decoder_committed(d), 3u);
    wal_decoder_free(d);
    memwal_free(&f);
    walgen_free(g);
}

Test(wal_decoder, sync_padding_frames_are_one_frame_commits)
{
    struct walgen *g = walgen_new(1024, false, 5, 6);
    struct memwal f;
    struct rec r;
    struct wal_decoder *d;

    walgen_header(g);
    walgen_frame(g, 1, 0, 0);
    walgen_commit(g, 2, 3);
    walgen_commit(g, 2, 3); /* padding copies */
    walgen_commit(g, 2, 3);
    d = feed(&r, &f, g, SPLIT_NONE, 0);
    cr_assert_eq(r.n, 3);
    expect_commit(&r, 0, 1, 2, 3);
    expect_commit(&r, 1, 3, 3, 3);
    expect_commit(&r, 2, 4, 4, 3);
    wal_decoder_free(d);
    memwal_free(&f);
    walgen_free(g);
}

Test(wal_decoder, torn_last_frame_is_not_committed)
{
    struct walgen *g = walgen_new(4096, false, 1, 1);
    struct memwal f;
    struct rec r;
    struct wal_decoder *d;

    walgen_header(g);
    walgen_frame(g, 1, 0, 0);
    walgen_commit(g, 2, 2);
    walgen_frame(g, 3, 0, 0);
    walgen_commit(g, 4, 4);
    /* replay everything but the last page write, then half of it */
    const struct walops *ops = walgen_ops(g);
    memset(&f, 0, sizeof(f));
    d = rec_decoder(&r, &f);
    replay(d, &f, ops, ops->n - 1, SPLIT_NONE, 0);
    const struct walop *last = &ops->v[ops->n - 1];
    memwal_write(&f, last->off, last->data, last->len / 2);
    cr_assert_eq(wal_decoder_wrote(d, last->off, last->data, last->len / 2, NULL), 0);
    cr_expect_eq(r.n, 1);
    expect_commit(&r, 0, 1, 2, 2);
    /* a scan of the torn file agrees */
    struct rec r2;
    struct wal_decoder *d2 = rec_decoder(&r2, &f);
    cr_assert_eq(wal_decoder_scan(d2, f.len, NULL), 0);
    cr_expect_eq(r2.n, 1);
    cr_expect_eq(wal_decoder_committed(d2), 2u);
    /* the rest of the page arrives: now it commits */
    memwal_write(&f, last->off + last->len / 2, last->data + last->len / 2,
                 last->len - last->len / 2);
    cr_assert_eq(wal_decoder_wrote(d, last->off + last->len / 2, last->data + last->len / 2,
                                   last->len - last->len / 2, NULL),
                 0);
    cr_assert_eq(r.n, 2);
    expect_commit(&r, 1, 3, 4, 4);
    wal_decoder_free(d);
    wal_decoder_free(d2);
    memwal_free(&f);
    walgen_free(g);
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
            struct walgen *g = walgen_new(ps, false, 42, 43);
            struct memwal f;
            struct rec r, r2;
            struct wal_decoder *d, *d2;

            walgen_header(g);
            for (uint32_t t = 0; t < 3; t++) {
                walgen_frame(g, 1, 0, t);
                walgen_commit(g, 2, 2 + t);
            }
            walgen_flip_bit(g, spots[i], bit);
            d = feed(&r, &f, g, SPLIT_NONE, 0);
            cr_expect_eq(r.n, 1, "flip at %llu bit %u: %zu commits", (unsigned long long)spots[i],
                         bit, r.n);
            cr_expect_eq(wal_decoder_committed(d), 2u);
            d2 = rec_decoder(&r2, walgen_image(g));
            cr_assert_eq(wal_decoder_scan(d2, walgen_image(g)->len, NULL), 0);
            cr_expect_eq(r2.n, 1, "scan: flip at %llu", (unsigned long long)spots[i]);
            wal_decoder_free(d);
            wal_decoder_free(d2);
            memwal_free(&f);
            walgen_free(g);
        }
    }
}

Test(wal_decoder, foreign_salt_frame_is_not_committed)
{
    struct walgen *g = walgen_new(4096, false, 10, 20);
    struct memwal f;
    struct rec r;
    struct wal_decoder *d;

    walgen_header(g);
    walgen_commit(g, 1, 1);
    walgen_commit(g, 1, 1);
    walgen_flip_bit(g, 32 + 4120 + 8, 0); /* salt-1 of frame 2 */
    d = feed(&r, &f, g, SPLIT_NONE, 0);
    cr_expect_eq(r.n, 1);
    wal_decoder_free(d);
    memwal_free(&f);
    walgen_free(g);
}

Test(wal_decoder, restart_with_new_salts_counts_from_one)
{
    struct walgen *g = walgen_new(1024, false, 100, 200);
    struct memwal f;
    struct rec r;
    struct wal_decoder *d;

    walgen_header(g);
    for (uint32_t i = 0; i < 3; i++) {
        walgen_frame(g, 1, 0, i);
        walgen_commit(g, 2, 2);
    }
    walgen_restart(g, 101, 999); /* checkpointed; new salts; old frames 3..6 stay stale */
    walgen_commit(g, 3, 3);
    d = feed(&r, &f, g, SPLIT_NONE, 0);
    cr_expect_eq(r.n_restarts, 2);
    cr_assert_eq(r.n, 4);
    expect_commit(&r, 2, 5, 6, 2);
    expect_commit(&r, 3, 1, 1, 3);
    cr_expect_eq(r.c[3].salt1, 101u);
    cr_expect_eq(r.c[3].salt2, 999u);
    cr_expect_eq(r.c[3].ckpt_seq, 1u);
    cr_expect_eq(r.last_header.salt2, 999u);
    cr_expect_eq(wal_decoder_committed(d), 1u);
    /* a scan sees only the new sequence (old frames have old salts) */
    struct rec r2;
    struct wal_decoder *d2 = rec_decoder(&r2, walgen_image(g));
    cr_assert_eq(wal_decoder_scan(d2, walgen_image(g)->len, NULL), 0);
    cr_expect_eq(r2.n_restarts, 1);
    cr_assert_eq(r2.n, 1);
    expect_commit(&r2, 0, 1, 1, 3);
    wal_decoder_free(d);
    wal_decoder_free(d2);
    memwal_free(&f);
    walgen_free(g);
}

Test(wal_decoder, identical_header_rewrite_is_not_a_restart)
{
    struct walgen *g = walgen_new(1024, false, 100, 200);
    struct memwal f;
    struct rec r;
    struct wal_decoder *d;

    walgen_header(g);
    walgen_frame(g, 1, 0, 0); /* spilled, rolled back, header written again */
    walgen_rollback_to(g, 0);
    walgen_header(g);
    walgen_commit(g, 1, 1);
    d = feed(&r, &f, g, SPLIT_NONE, 0);
    cr_expect_eq(r.n_restarts, 1);
    cr_assert_eq(r.n, 1);
    expect_commit(&r, 0, 1, 1, 1);
    wal_decoder_free(d);
    memwal_free(&f);
    walgen_free(g);
}

Test(wal_decoder, truncation_ends_sequence_only_below_committed_end)
{
    struct walgen *g = walgen_new(1024, false, 1, 2);
    struct memwal f;
    struct rec r;
    struct wal_decoder *d;
    uint64_t fsz = 24 + 1024;

    walgen_header(g);
    walgen_commit(g, 1, 1);
    walgen_commit(g, 2, 2);
    walgen_truncate(g, 32 + 2 * fsz);  /* exactly the committed end: silent */
    walgen_truncate(g, 32 + 10 * fsz); /* extension: silent */
    d = feed(&r, &f, g, SPLIT_NONE, 0);
    cr_expect_eq(r.n_truncates, 0);
    cr_expect_eq(wal_decoder_committed(d), 2u);
    cr_assert_eq(wal_decoder_truncated(d, 32 + fsz, NULL), 0); /* below: ends it */
    cr_expect_eq(r.n_truncates, 1);
    cr_expect_eq(r.last_truncate, 32 + fsz);
    cr_expect_eq(wal_decoder_committed(d), 0u);
    cr_expect_eq(wal_decoder_page_size(d), 0u);
    struct wal_header h;
    cr_expect(!wal_decoder_header(d, &h));
    /* frames written without a header are ignored */
    cr_assert_eq(wal_decoder_wrote(d, 32, f.data + 32, (size_t)fsz, NULL), 0);
    cr_expect_eq(r.n, 2);
    wal_decoder_free(d);
    memwal_free(&f);

    /* truncate to 0, then a new WAL: restart, frames from 1 */
    walgen_truncate(g, 0);
    walgen_restart(g, 5, 6);
    walgen_commit(g, 3, 3);
    d = feed(&r, &f, g, SPLIT_NONE, 0);
    cr_expect_eq(r.n_truncates, 1);
    cr_expect_eq(r.last_truncate, 0u);
    cr_expect_eq(r.n_restarts, 2);
    cr_assert_eq(r.n, 3);
    expect_commit(&r, 2, 1, 1, 3);
    wal_decoder_free(d);
    memwal_free(&f);
    walgen_free(g);
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

Test(wal_decoder, mixed_history_expected_commits)
{
    struct walgen *g = mixed_history(1024, false);
    struct memwal f;
    struct rec r;
    struct wal_decoder *d = feed(&r, &f, g, SPLIT_NONE, 0);

    cr_expect_eq(r.n_restarts, 2);
    cr_assert_eq(r.n, 8, "%zu commits", r.n);
    expect_commit(&r, 0, 1, 1, 1);
    expect_commit(&r, 1, 2, 4, 3);
    expect_commit(&r, 3, 8, 10, 3);
    expect_commit(&r, 4, 11, 14, 6);
    expect_commit(&r, 5, 15, 16, 6);
    expect_commit(&r, 6, 17, 17, 6);
    expect_commit(&r, 7, 1, 2, 6);
    for (size_t i = 0; i < r.n; i++)
        cr_expect(!r.c[i].rechained, "commit %zu rechained", i);
    wal_decoder_free(d);
    memwal_free(&f);
    walgen_free(g);
}

Test(wal_decoder, random_splits_give_the_same_commits)
{
    const uint32_t sizes[] = {512, 4096, 65536};
    for (size_t s = 0; s < 3; s++) {
        for (int be = 0; be <= 1; be++) {
            struct walgen *g = mixed_history(sizes[s], be);
            struct memwal f0;
            struct rec *base = malloc(sizeof(*base)), *other = malloc(sizeof(*other));
            struct wal_decoder *d0 = feed(base, &f0, g, SPLIT_NONE, 0);

            cr_assert_eq(base->n, 8);
            for (unsigned seed = 1; seed <= 4; seed++) {
                struct memwal f;
                struct wal_decoder *d = feed(other, &f, g, SPLIT_RANDOM, seed);
                same_commits(base, other, "random");
                cr_expect_eq(f.len, walgen_image(g)->len);
                wal_decoder_free(d);
                memwal_free(&f);
            }
            {
                struct memwal f;
                struct wal_decoder *d = feed(other, &f, g, SPLIT_COALESCE, 0);
                same_commits(base, other, "coalesced");
                wal_decoder_free(d);
                memwal_free(&f);
            }
            if (sizes[s] == 512) {
                struct memwal f;
                struct wal_decoder *d = feed(other, &f, g, SPLIT_BYTES, 0);
                same_commits(base, other, "bytes");
                wal_decoder_free(d);
                memwal_free(&f);
            }
            wal_decoder_free(d0);
            memwal_free(&f0);
            free(base);
            free(other);
            walgen_free(g);
        }
    }
}

Test(wal_decoder, scan_equals_incremental_and_resumes)
{
    struct walgen *g = walgen_new(2048, false, 8, 9);
    struct memwal f;
    struct rec r, r2;
    struct wal_decoder *d, *d2;

    walgen_header(g);
    for (uint32_t t = 0; t < 50; t++) {
        for (uint32_t p = 0; p < t % 7; p++)
            walgen_frame(g, 2 + p, 0, t);
        walgen_commit(g, 1, 10 + t);
    }
    walgen_frame(g, 2, 0, 99); /* open tail */
    d = feed(&r, &f, g, SPLIT_NONE, 0);
    d2 = rec_decoder(&r2, walgen_image(g));
    cr_assert_eq(wal_decoder_scan(d2, walgen_image(g)->len, NULL), 0);
    same_commits(&r, &r2, "scan");
    cr_expect_eq(r2.n_restarts, 1);
    cr_expect_eq(wal_decoder_committed(d2), wal_decoder_committed(d));
    uint32_t s1[2], s2[2];
    cr_assert(wal_decoder_checksum(d, s1));
    cr_assert(wal_decoder_checksum(d2, s2));
    cr_expect_eq(s1[0], s2[0]);
    cr_expect_eq(s1[1], s2[1]);
    /* the scanned decoder continues incrementally */
    size_t before = walgen_ops(g)->n;
    walgen_commit(g, 1, 77);
    {
        struct walops rest = *walgen_ops(g);
        rest.v += before;
        rest.n -= before;
        replay(d2, walgen_image(g), &rest, rest.n, SPLIT_NONE, 0);
    }
    cr_assert_eq(r2.n, r.n + 1);
    cr_expect_eq(r2.c[r2.n - 1].db_pages, 77u);
    cr_expect_eq(r2.c[r2.n - 1].first, wal_decoder_committed(d) + 1);
    wal_decoder_free(d);
    wal_decoder_free(d2);
    memwal_free(&f);
    walgen_free(g);
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
    struct walgen *g = walgen_new(1024, false, 1, 2);
    struct memwal f = {0};
    struct rec r;
    struct wal_decoder *d = rec_decoder(&r, &f);
    struct err e = {0};
    const struct walops *ops;

    walgen_header(g);
    walgen_frame(g, 1, 0, 0);
    walgen_commit(g, 2, 2);
    ops = walgen_ops(g);
    r.fail_next = ENOSPC;
    for (size_t i = 0; i < ops->n; i++) {
        memwal_write(&f, ops->v[i].off, ops->v[i].data, ops->v[i].len);
        int rc = wal_decoder_wrote(d, ops->v[i].off, ops->v[i].data, ops->v[i].len, &e);
        if (i + 1 < ops->n)
            cr_assert_eq(rc, 0);
        else
            cr_assert_eq(rc, ENOSPC);
    }
    cr_expect(strstr(e.msg, "refused") != NULL, "%s", e.msg);
    cr_expect_eq(r.n, 0);
    cr_expect_eq(wal_decoder_committed(d), 0u);
    cr_assert_eq(wal_decoder_recheck(d, NULL), 0);
    cr_assert_eq(r.n, 1);
    expect_commit(&r, 0, 1, 2, 2);
    cr_assert_eq(wal_decoder_recheck(d, NULL), 0);
    cr_expect_eq(r.n, 1);
    wal_decoder_free(d);
    memwal_free(&f);
    walgen_free(g);
}

/* Non-commit writes read nothing back; each commit reads back only its own earlier frames. */
Test(wal_decoder, read_back_cost)
{
    struct walgen *g = walgen_new(4096, false, 1, 2);
    struct memwal f = {0};
    struct rec r;
    struct wal_decoder *d = rec_decoder(&r, &f);
    const struct walops *ops;
    size_t done = 0;

    walgen_header(g);
    for (uint32_t t = 0; t < 20; t++) {
        for (uint32_t p = 0; p < 3; p++)
            walgen_frame(g, 2 + p, 0, t);
        walgen_commit(g, 1, 5);
        ops = walgen_ops(g);
        size_t reads_before = r.n_reads, bytes_before = r.read_bytes;
        for (; done < ops->n; done++) {
            const struct walop *op = &ops->v[done];
            memwal_write(&f, op->off, op->data, op->len);
            size_t reads = r.n_reads;
            cr_assert_eq(wal_decoder_wrote(d, op->off, op->data, op->len, NULL), 0);
            if (done + 1 < ops->n)
                cr_assert_eq(r.n_reads, reads, "op %zu is not a commit but read back", done);
        }
        cr_expect_eq(r.n, t + 1);
        /* at most: the 3 earlier frames + the commit frame's header */
        cr_expect_leq(r.read_bytes - bytes_before, 3 * 4120 + 24, "tx %u read %zu", t,
                      r.read_bytes - bytes_before);
        cr_expect_leq(r.n_reads - reads_before, 2);
    }
    wal_decoder_free(d);
    memwal_free(&f);
    walgen_free(g);
}

/* A corrupt frame is not re-read on every later commit. */
Test(wal_decoder, corrupt_tail_is_not_reread_on_every_commit)
{
    struct walgen *g = walgen_new(1024, false, 1, 2);
    struct memwal f;
    struct rec r;
    struct wal_decoder *d;

    walgen_header(g);
    walgen_commit(g, 1, 1);
    walgen_frame(g, 2, 0, 0);
    walgen_commit(g, 1, 2);
    walgen_flip_bit(g, 32 + 1048 + 100, 3); /* frame 2's page */
    for (int t = 0; t < 200; t++) {
        walgen_frame(g, 2, 0, (uint32_t)t);
        walgen_commit(g, 1, 2);
    }
    d = feed(&r, &f, g, SPLIT_NONE, 0);
    cr_expect_eq(r.n, 1);
    /* the first failed validation reads ~2 frames; later commits must not re-read them all */
    cr_expect_lt(r.read_bytes, (size_t)20 * 1048, "read back %zu bytes", r.read_bytes);
    /* rewriting the bad frame correctly (as SQLite never would) revives the chain */
    wal_decoder_free(d);
    memwal_free(&f);
    walgen_free(g);
}

/* SQLite 3.40.1 after ROLLBACK TO of a spilled savepoint: the commit's frames stay zero-salted
 * (never rewritten) and the next transaction chains from a stale value. */
static struct walgen *sqlite_bug_history(void)
{
    struct walgen *g = walgen_new(1024, false, 0x51, 0x52);

    walgen_header(g);
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
    struct memwal f;
    struct rec r;
    struct wal_decoder *d = feed(&r, &f, g, SPLIT_NONE, 0);

    cr_assert_eq(r.n, 4, "%zu commits", r.n);
    expect_commit(&r, 0, 1, 2, 2);
    expect_commit(&r, 1, 3, 4, 3);
    expect_commit(&r, 2, 5, 6, 3);
    expect_commit(&r, 3, 7, 7, 3);
    cr_expect(!r.c[0].rechained);
    for (size_t i = 1; i < 4; i++) {
        cr_expect(r.c[i].rechained, "commit %zu", i);
        cr_expect_eq(r.c[i].prev1, r.c[i - 1].cksum1);
        cr_expect_eq(r.c[i].prev2, r.c[i - 1].cksum2);
    }
    /* rechaining every reported frame gives a WAL that validates strictly */
    struct memwal shipped = {0};
    memwal_write(&shipped, 0, walgen_image(g)->data, walgen_image(g)->len);
    for (size_t i = 1; i < 4; i++) {
        uint32_t s[2] = {r.c[i].prev1, r.c[i].prev2};
        wal_frames_rechain(false, r.c[i].salt1, r.c[i].salt2, 1024, shipped.data + r.c[i].first_off,
                           r.c[i].last - r.c[i].first + 1, s);
        cr_expect_eq(s[0], r.c[i].cksum1);
        cr_expect_eq(s[1], r.c[i].cksum2);
    }
    struct rec r2;
    struct wal_decoder *d2 = rec_decoder(&r2, &shipped);
    cr_assert_eq(wal_decoder_scan(d2, shipped.len, NULL), 0);
    same_commits(&r, &r2, "shipped");
    /* a scan of the original never applies the rule */
    struct rec r3;
    struct wal_decoder *d3 = rec_decoder(&r3, walgen_image(g));
    cr_assert_eq(wal_decoder_scan(d3, walgen_image(g)->len, NULL), 0);
    cr_expect_eq(r3.n, 1);
    /* the same in any split */
    for (unsigned seed = 1; seed <= 6; seed++) {
        struct memwal f2;
        struct rec *o = malloc(sizeof(*o));
        struct wal_decoder *d4 =
            feed(o, &f2, g, seed % 3 == 0 ? SPLIT_COALESCE : SPLIT_RANDOM, seed);
        same_commits(&r, o, "split");
        wal_decoder_free(d4);
        memwal_free(&f2);
        free(o);
    }
    wal_decoder_free(d);
    wal_decoder_free(d2);
    wal_decoder_free(d3);
    memwal_free(&f);
    memwal_free(&shipped);
    walgen_free(g);
}

Test(wal_decoder, zero_salted_commit_without_proof_is_not_reported)
{
    struct walgen *g = walgen_new(1024, false, 0x51, 0x52);
    struct memwal f;
    struct rec r;
    struct wal_decoder *d;

    walgen_header(g);
    walgen_commit(g, 1, 1);
    walgen_frame_unsalted(g, 3, 0, 0); /* a commit torn between frame write and rewrite */
    walgen_frame_unsalted(g, 1, 3, 0);
    d = feed(&r, &f, g, SPLIT_NONE, 0);
    cr_expect_eq(r.n, 1);
    /* a stale, correctly salted frame already after it is no proof */
    wal_decoder_free(d);
    memwal_free(&f);
    walgen_free(g);

    g = walgen_new(1024, false, 0x51, 0x52);
    walgen_header(g);
    walgen_commit(g, 1, 1);
    walgen_frame(g, 2, 0, 0); /* frames 2-4 spilled then rolled back: stale, salted */
    walgen_frame(g, 3, 0, 0);
    walgen_frame(g, 4, 0, 0);
    walgen_rollback_to(g, 1);
    walgen_frame_unsalted(g, 3, 0, 1);
    walgen_frame_unsalted(g, 1, 3, 1); /* frame 3; frame 4 still the stale one */
    d = feed(&r, &f, g, SPLIT_NONE, 0);
    cr_expect_eq(r.n, 1);
    wal_decoder_free(d);
    memwal_free(&f);
    walgen_free(g);
}

Test(wal_decoder, sqlite_bug_commit_settled_by_restart)
{
    struct walgen *g = walgen_new(1024, false, 0x51, 0x52);
    struct memwal f;
    struct rec r;
    struct wal_decoder *d;

    walgen_header(g);
    walgen_commit(g, 1, 1);
    walgen_frame_unsalted(g, 3, 0, 0);
    walgen_frame_unsalted(g, 1, 3, 0);
    walgen_restart(g, 0x53, 0x54); /* checkpointed (it was committed), restarted */
    walgen_commit(g, 2, 3);
    d = feed(&r, &f, g, SPLIT_NONE, 0);
    cr_assert_eq(r.n, 3);
    expect_commit(&r, 1, 2, 3, 3);
    cr_expect(r.c[1].rechained);
    cr_expect_eq(r.c[1].salt1, 0x51u);
    expect_commit(&r, 2, 1, 1, 3);
    cr_expect(!r.c[2].rechained, "the new sequence chains normally");
    cr_expect_eq(r.n_restarts, 2);
    wal_decoder_free(d);
    memwal_free(&f);
    walgen_free(g);
}
