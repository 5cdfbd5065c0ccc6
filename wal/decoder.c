/* wal/decoder.c - incremental decoder for one SQLite "-wal" file (contract in decoder.h).
 *
 * The byte format (header, frame header, cumulative checksum) is described at the top of
 * walfmt.c. How SQLite writes it, which is what this decoder has to follow (sqlite3WalFrames):
 *  - the first frame of a WAL sequence is preceded by a 32-byte header write at offset 0 (new
 *    salts after each checkpoint restart; the same salts when a rolled-back transaction had
 *    already written the header);
 *  - each appended frame is two writes: its 24-byte header, then its page (a FUSE daemon may see
 *    the page split in two);
 *  - a page written twice in one transaction is rewritten in place (page only, at frame offset +
 *    24). From then on, SQLite writes the transaction's new frame headers with zero salts and
 *    checksums; after appending the commit frame it rewrites those headers in frame order, the
 *    commit frame's header last (walRewriteChecksums);
 *  - with synchronous=FULL and no powersafe overwrite, copies of the commit frame pad the WAL to
 *    a sector boundary; each is a valid commit frame of its own;
 *  - ROLLBACK leaves spilled frames in the file; the next transaction overwrites them;
 *  - wal_checkpoint(TRUNCATE) truncates the file to 0; journal_size_limit truncates it to a
 *    size at or above the end of the last commit;
 *  - SQLite 3.40.1 (and other releases before the fix that resets iReCksum in
 *    sqlite3WalSavepointUndo): after ROLLBACK TO a savepoint whose spilled pages had been
 *    rewritten in place, the rest of the transaction is written zero-salted and never
 *    rewritten (walRewriteChecksums starts past the commit frame), and the next transactions
 *    chain from the stale checksum of an unrelated frame. Reproduced by
 *    tests/unit/test_wal_sqlite.c rollbacks_and_savepoints; SQLite's own recovery of such a
 *    WAL loses the transaction and all later ones of the sequence.
 *
 * That last case is handled by the "SQLite-bug rule" (decoder.h): `unsalted_commit` remembers a
 * complete zero-salted commit frame; when SQLite writes a correctly salted frame after it, or a
 * new header, the transaction is accepted (advance(lenient)), reported `rechained`, and from
 * then on the decoder keeps two chains: the file's (`fchain`, whose seed after the bug is
 * unknown, so the first frame after it is checked by salts only and must be freshly written:
 * hwm is lowered) and the shipped one (`cksum`, what wal_frames_rechain() produces).
 *
 * State: the current header, `committed` (last committed frame) and the checksum after it,
 * `hwm` (end of the bytes written since the header: frames below it are present in the file;
 * stale bytes of an earlier sequence above it are not trusted), a copy of the last frame header
 * written (so the page write that completes a frame costs no read-back), and two hints that
 * keep a corrupt tail from being re-read on every commit: `bad`, the first frame that failed
 * validation (cleared when something writes at or below it), and `pending`, the highest
 * complete commit frame that did not validate (retried when a write touches frames at or below
 * it). */
#include "wal/decoder.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Frames are read back in chunks of about this many bytes (at least one frame). */
#define DECODER_CHUNK_BYTES (256u * 1024u)
#define NO_OFFSET UINT64_MAX

struct wal_decoder {
    struct wal_decoder_ops ops;
    void *arg;

    bool have_header;
    struct wal_header hdr;
    uint8_t hdr_bytes[WAL_HEADER_BYTES];
    uint64_t frame_size;   /* 24 + page size */
    uint32_t chunk_frames; /* frames per read-back chunk */

    uint32_t committed;       /* last committed frame, 0 = none */
    uint32_t cksum[2];        /* shipped chain after frame `committed` (header checksum when 0) */
    uint32_t fchain[2];       /* stored checksum of frame `committed` (the file's chain) */
    bool fchain_known;        /* false after a rechained commit: the file chain went stale */
    bool rechained;           /* a commit of this sequence needed the SQLite-bug rule (decoder.h) */
    uint32_t unsalted_commit; /* complete commit frame > committed with zero salts; 0 = none */
    uint64_t hwm;             /* end of bytes written since the header */
    uint32_t bad;             /* first frame > committed that failed validation; 0 = none */
    uint32_t pending;         /* highest complete commit frame that failed validation; 0 = none */

    uint64_t cached_off; /* offset of the frame header copy in cached; NO_OFFSET = none */
    uint8_t cached[WAL_FRAME_HEADER_BYTES];

    uint8_t *scratch;
    size_t scratch_cap;
};

/* The write being processed (bytes already in the file). len 0 = none. */
struct wsrc {
    uint64_t off;
    const uint8_t *p;
    size_t len;
};

static uint64_t u64_clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static uint64_t frame_end(const struct wal_decoder *d, uint32_t n)
{
    return WAL_HEADER_BYTES + (uint64_t)n * d->frame_size;
}

/* 1-based frame holding byte x (x >= 32); 0 when beyond the 32-bit frame space. */
static uint32_t frame_at(const struct wal_decoder *d, uint64_t x)
{
    uint64_t n = (x - WAL_HEADER_BYTES) / d->frame_size + 1;
    return n > UINT32_MAX ? 0 : (uint32_t)n;
}

/* Number of whole frames below byte offset end. */
static uint32_t frames_below(const struct wal_decoder *d, uint64_t end)
{
    uint64_t n;

    if (end < WAL_HEADER_BYTES)
        return 0;
    n = (end - WAL_HEADER_BYTES) / d->frame_size;
    return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

static int scratch_reserve(struct wal_decoder *d, size_t len, struct err *err)
{
    uint8_t *p;

    if (len <= d->scratch_cap)
        return 0;
    p = realloc(d->scratch, len);
    if (!p)
        return ERR(err, ENOMEM, "wal decoder: %zu-byte read buffer", len);
    d->scratch = p;
    d->scratch_cap = len;
    return 0;
}

static int read_at(struct wal_decoder *d, uint64_t off, uint8_t *dst, size_t len, size_t *got,
                   struct err *err)
{
    int rc;

    *got = 0;
    rc = d->ops.read(d->arg, off, dst, len, got, err);
    if (rc) {
        err_prefix(err, "wal decoder: read back %zu bytes at %llu", len, (unsigned long long)off);
        return rc;
    }
    if (*got > len)
        *got = len;
    return 0;
}

/* Makes bytes [off, off+len) available at *out: a pointer into the written buffer when it holds
 * all of them, else the scratch buffer (read back; the written part copied from w). *got_out is
 * the count of contiguous bytes available from off (< len only at end of file). *out is valid
 * until the next fetch. */
static int fetch(struct wal_decoder *d, const struct wsrc *w, uint64_t off, size_t len,
                 const uint8_t **out, size_t *got_out, struct err *err)
{
    uint64_t end = off + len, a = end, b = end;
    size_t got = 0, n;
    int rc;

    *got_out = 0;
    if (w->len && off >= w->off && end <= w->off + w->len) {
        *out = w->p + (off - w->off);
        *got_out = len;
        return 0;
    }
    rc = scratch_reserve(d, len, err);
    if (rc)
        return rc;
    *out = d->scratch;
    if (w->len) {
        a = u64_clamp(w->off, off, end);
        b = u64_clamp(w->off + w->len, a, end);
    }
    if (a > off) {
        rc = read_at(d, off, d->scratch, (size_t)(a - off), &n, err);
        if (rc)
            return rc;
        got = n;
        if (n < a - off) {
            *got_out = got;
            return 0;
        }
    }
    if (b > a) {
        memcpy(d->scratch + (a - off), w->p + (a - w->off), (size_t)(b - a));
        got += (size_t)(b - a);
    }
    if (end > b) {
        rc = read_at(d, b, d->scratch + (b - off), (size_t)(end - b), &n, err);
        if (rc)
            return rc;
        got += n;
    }
    *got_out = got;
    return 0;
}

static void reset_sequence(struct wal_decoder *d)
{
    d->have_header = false;
    memset(&d->hdr, 0, sizeof(d->hdr));
    memset(d->hdr_bytes, 0, sizeof(d->hdr_bytes));
    d->frame_size = 0;
    d->chunk_frames = 0;
    d->committed = 0;
    d->cksum[0] = d->cksum[1] = 0;
    d->fchain[0] = d->fchain[1] = 0;
    d->fchain_known = true;
    d->rechained = false;
    d->unsalted_commit = 0;
    d->hwm = 0;
    d->bad = 0;
    d->pending = 0;
    d->cached_off = NO_OFFSET;
}

/* Adopts a new, valid header and reports the restart. */
static int adopt_header(struct wal_decoder *d, const uint8_t bytes[WAL_HEADER_BYTES],
                        const struct wal_header *h, struct err *err)
{
    reset_sequence(d);
    d->have_header = true;
    d->hdr = *h;
    memcpy(d->hdr_bytes, bytes, WAL_HEADER_BYTES);
    d->frame_size = wal_frame_size(h->page_size);
    d->chunk_frames = (uint32_t)(DECODER_CHUNK_BYTES / d->frame_size);
    if (d->chunk_frames == 0)
        d->chunk_frames = 1;
    d->cksum[0] = d->fchain[0] = h->cksum1;
    d->cksum[1] = d->fchain[1] = h->cksum2;
    d->hwm = WAL_HEADER_BYTES;
    if (d->ops.on_restart)
        return d->ops.on_restart(d->arg, h, err);
    return 0;
}

static int report_commit(struct wal_decoder *d, uint32_t first, uint32_t last, uint32_t db_pages,
                         const uint32_t s[2], const uint32_t prev[2], bool rechained,
                         struct err *err)
{
    struct wal_commit c;

    if (!d->ops.on_commit)
        return 0;
    memset(&c, 0, sizeof(c));
    c.first = first;
    c.last = last;
    c.db_pages = db_pages;
    c.page_size = d->hdr.page_size;
    c.salt1 = d->hdr.salt1;
    c.salt2 = d->hdr.salt2;
    c.ckpt_seq = d->hdr.ckpt_seq;
    c.cksum1 = s[0];
    c.cksum2 = s[1];
    c.prev1 = prev[0];
    c.prev2 = prev[1];
    c.rechained = rechained;
    c.seed1 = d->hdr.cksum1;
    c.seed2 = d->hdr.cksum2;
    c.big_endian = d->hdr.big_endian;
    c.first_off = wal_frame_offset(d->hdr.page_size, first);
    c.n_bytes = (uint64_t)(last - first + 1) * d->frame_size;
    return d->ops.on_commit(d->arg, &c, err);
}

static bool zero_salted(const struct wal_frame_header *fh)
{
    return fh->salt1 == 0 && fh->salt2 == 0 && fh->cksum1 == 0 && fh->cksum2 == 0;
}

/* Validates frames committed+1..limit in order and reports each commit they contain. Stops at
 * the first frame that is missing or torn (end of file), has foreign salts or breaks the
 * checksum chain (then d->bad names it). lenient: limit is a zero-salted commit frame SQLite
 * is known to have finished (SQLite-bug rule in decoder.h): a run of zero-salted frames ending
 * at it is accepted and rechained. */
static int advance(struct wal_decoder *d, const struct wsrc *w, uint32_t limit, bool lenient,
                   struct err *err)
{
    uint32_t sf[2] = {d->fchain[0], d->fchain[1]}; /* the file's chain */
    uint32_t so[2] = {d->cksum[0], d->cksum[1]};   /* the shipped chain */
    uint32_t prev[2] = {so[0], so[1]};
    bool known = d->fchain_known, zero = false, rechain = d->rechained;
    uint32_t first = d->committed + 1, n = first;
    uint32_t page_size = d->hdr.page_size;
    bool be = d->hdr.big_endian;
    int rc;

    d->bad = 0;
    while (n <= limit && n != 0) {
        uint32_t want = limit - n + 1 < d->chunk_frames ? limit - n + 1 : d->chunk_frames;
        uint32_t have, i;
        const uint8_t *p;
        size_t got;

        rc = fetch(d, w, wal_frame_offset(page_size, n), (size_t)want * d->frame_size, &p, &got,
                   err);
        if (rc)
            return rc;
        have = (uint32_t)(got / d->frame_size);
        for (i = 0; i < have; i++, n++) {
            const uint8_t *f = p + (size_t)i * d->frame_size;
            const uint8_t *page = f + WAL_FRAME_HEADER_BYTES;
            struct wal_frame_header fh;

            wal_frame_header_parse(f, &fh);
            if (!zero) {
                bool ok = fh.salt1 == d->hdr.salt1 && fh.salt2 == d->hdr.salt2;
                if (ok && known) {
                    ok = wal_frame_checksum_ok(be, f, page, page_size, sf);
                } else if (ok) {
                    /* first frame after a rechained commit: its seed is SQLite's stale value */
                    sf[0] = fh.cksum1;
                    sf[1] = fh.cksum2;
                    known = true;
                }
                if (!ok && lenient && zero_salted(&fh)) {
                    zero = true;
                    rechain = true;
                } else if (!ok) {
                    d->bad = n;
                    return 0;
                }
            } else if (!zero_salted(&fh)) {
                d->bad = n;
                return 0;
            }
            if (rechain) {
                wal_checksum(be, f, 8, so);
                wal_checksum(be, page, page_size, so);
            } else {
                so[0] = sf[0];
                so[1] = sf[1];
            }
            if (fh.db_pages != 0) {
                if (zero && n != limit) {
                    d->bad = n;
                    return 0;
                }
                rc = report_commit(d, first, n, fh.db_pages, so, prev, rechain, err);
                if (rc)
                    return rc;
                d->committed = n;
                d->cksum[0] = prev[0] = so[0];
                d->cksum[1] = prev[1] = so[1];
                d->fchain[0] = sf[0];
                d->fchain[1] = sf[1];
                d->fchain_known = !zero;
                d->rechained = rechain;
                first = n + 1;
                if (zero)
                    return 0;
            }
            if (n == UINT32_MAX)
                return 0;
        }
        if (have < want)
            return 0; /* torn tail / end of file */
    }
    return 0;
}

/* Validates up to candidate commit frame cand, keeping the bad/pending hints. */
static int validate_to(struct wal_decoder *d, const struct wsrc *w, uint32_t cand, struct err *err)
{
    int rc;

    if (cand <= d->committed)
        return 0;
    if (d->bad != 0 && d->bad <= cand) {
        /* nothing at or below the known bad frame changed: it would fail again */
        if (cand > d->pending)
            d->pending = cand;
        return 0;
    }
    rc = advance(d, w, cand, false, err);
    if (d->committed < cand) {
        if (cand > d->pending)
            d->pending = cand;
    } else if (d->pending <= d->committed) {
        d->pending = 0;
    }
    return rc;
}

/* Frame header of frame f as it is now: from the write, the cached copy, or read back. */
static int frame_header_now(struct wal_decoder *d, const struct wsrc *w, uint32_t f,
                            struct wal_frame_header *out, bool *ok, struct err *err)
{
    uint64_t off = wal_frame_offset(d->hdr.page_size, f);
    const uint8_t *p;
    size_t got;
    int rc;

    *ok = false;
    if (!(w->len && off >= w->off && off + WAL_FRAME_HEADER_BYTES <= w->off + w->len) &&
        d->cached_off == off) {
        wal_frame_header_parse(d->cached, out);
        *ok = true;
        return 0;
    }
    rc = fetch(d, w, off, WAL_FRAME_HEADER_BYTES, &p, &got, err);
    if (rc)
        return rc;
    if (got < WAL_FRAME_HEADER_BYTES)
        return 0;
    wal_frame_header_parse(p, out);
    *ok = true;
    return 0;
}

/* SQLite-bug rule (decoder.h): frame d->unsalted_commit was a zero-salted commit frame and
 * SQLite has since moved on. If it still is one, accept committed+1..it leniently. */
static int settle_unsalted(struct wal_decoder *d, const struct wsrc *w, struct err *err)
{
    uint32_t u = d->unsalted_commit;
    struct wal_frame_header fh;
    bool ok;
    int rc;

    d->unsalted_commit = 0;
    if (u <= d->committed || frame_end(d, u) > d->hwm)
        return 0;
    rc = frame_header_now(d, w, u, &fh, &ok, err);
    if (rc || !ok || fh.db_pages == 0 || !zero_salted(&fh))
        return rc;
    rc = advance(d, w, u, true, err);
    if (d->pending <= d->committed)
        d->pending = 0;
    if (d->committed == u) {
        /* The next frame's stored checksum chains from a value SQLite never wrote down, so
         * it can only be checked by its salts: trust only bytes written from now on (frames
         * after u hold stale spilled data until SQLite overwrites them). */
        uint64_t end = frame_end(d, u);
        if (w->len && w->off <= end && w->off + w->len > end)
            end = w->off + w->len;
        d->hwm = end;
    }
    return rc;
}

/* The write touched [0, 32): maybe a new header. */
static int handle_header_write(struct wal_decoder *d, const struct wsrc *w, struct err *err)
{
    struct wal_header h;
    const uint8_t *p;
    size_t got;
    int rc;

    rc = fetch(d, w, 0, WAL_HEADER_BYTES, &p, &got, err);
    if (rc)
        return rc;
    if (got < WAL_HEADER_BYTES)
        return 0;
    if (d->have_header && memcmp(p, d->hdr_bytes, WAL_HEADER_BYTES) == 0)
        return 0; /* rewritten unchanged */
    if (wal_header_parse(p, &h, NULL) != 0)
        return 0; /* torn or not (yet) a header: SQLite would ignore the file too */
    if (d->have_header && d->unsalted_commit > d->committed) {
        /* a restart proves SQLite finished the transaction ending at unsalted_commit */
        rc = settle_unsalted(d, w, err);
        if (rc)
            return rc;
    }
    {
        uint8_t copy[WAL_HEADER_BYTES];
        memcpy(copy, p, sizeof(copy)); /* p may point into scratch */
        return adopt_header(d, copy, &h, err);
    }
}

struct wal_decoder *wal_decoder_new(const struct wal_decoder_ops *ops, void *arg, struct err *err)
{
    struct wal_decoder *d;

    if (!ops || !ops->read) {
        ERR(err, EINVAL, "wal decoder: a read callback is required");
        return NULL;
    }
    d = calloc(1, sizeof(*d));
    if (!d) {
        ERR(err, ENOMEM, "wal decoder: allocation");
        return NULL;
    }
    d->ops = *ops;
    d->arg = arg;
    reset_sequence(d);
    return d;
}

void wal_decoder_free(struct wal_decoder *d)
{
    if (!d)
        return;
    free(d->scratch);
    free(d);
}

int wal_decoder_scan(struct wal_decoder *d, uint64_t file_size, struct err *err)
{
    struct wsrc none = {0, NULL, 0};
    struct wal_header h;
    const uint8_t *p;
    uint8_t hb[WAL_HEADER_BYTES];
    size_t got;
    int rc;

    reset_sequence(d);
    if (file_size < WAL_HEADER_BYTES)
        return 0;
    rc = fetch(d, &none, 0, WAL_HEADER_BYTES, &p, &got, err);
    if (rc)
        return rc;
    if (got < WAL_HEADER_BYTES || wal_header_parse(p, &h, NULL) != 0)
        return 0;
    memcpy(hb, p, sizeof(hb));
    rc = adopt_header(d, hb, &h, err);
    if (rc)
        return rc;
    rc = advance(d, &none, frames_below(d, file_size), false, err);
    /* Bytes past the last commit are stale or belong to an open transaction that will be
     * rewritten: they are trusted again only once written (unless a callback failed: then
     * wal_decoder_recheck() must see them). */
    d->hwm = rc ? file_size : frame_end(d, d->committed);
    d->bad = 0;
    d->pending = 0;
    return rc;
}

int wal_decoder_wrote(struct wal_decoder *d, uint64_t off, const void *buf, size_t len,
                      struct err *err)
{
    struct wsrc w = {off, buf, len};
    uint64_t end = off + len;
    uint32_t f0, f1, f, cand = 0;
    int rc;

    if (len == 0)
        return 0;
    /* the cached frame header is stale if this write changed part of it */
    if (d->cached_off != NO_OFFSET && off < d->cached_off + WAL_FRAME_HEADER_BYTES &&
        end > d->cached_off)
        d->cached_off = NO_OFFSET;
    if (off < WAL_HEADER_BYTES) {
        rc = handle_header_write(d, &w, err);
        if (rc)
            return rc;
    }
    if (!d->have_header)
        return 0;
    if (end > d->hwm)
        d->hwm = end;
    if (end <= WAL_HEADER_BYTES)
        return 0;
    f0 = frame_at(d, off > WAL_HEADER_BYTES ? off : WAL_HEADER_BYTES);
    f1 = frame_at(d, end - 1);
    if (f0 == 0)
        return 0;
    if (f1 == 0)
        f1 = UINT32_MAX;
    if (d->bad != 0 && f0 <= d->bad)
        d->bad = 0; /* the failed region changed: worth validating again */

    /* Candidates: touched commit frames that are complete now (the highest one). Only the first
     * touched frame can have its header outside the write. */
    if (f1 > d->committed) {
        uint32_t from = f0 > d->committed ? f0 : d->committed + 1;
        for (f = from; f <= f1 && f != 0; f++) {
            struct wal_frame_header fh;
            bool ok;

            if (frame_end(d, f) > d->hwm)
                break; /* this and later frames are incomplete */
            rc = frame_header_now(d, &w, f, &fh, &ok, err);
            if (rc)
                return rc;
            if (ok && fh.db_pages != 0 && fh.salt1 == d->hdr.salt1 && fh.salt2 == d->hdr.salt2)
                cand = f;
            else if (ok && fh.db_pages != 0 && zero_salted(&fh))
                d->unsalted_commit = f; /* awaiting its checksum rewrite (or the SQLite bug) */
            if (f == UINT32_MAX)
                break;
        }
    }
    if (d->pending > d->committed && f0 <= d->pending && d->pending > cand &&
        frame_end(d, d->pending) <= d->hwm)
        cand = d->pending;

    /* Keep the last frame header the write holds whole: the page write that follows it
     * completes the frame without a read-back. */
    if (end >= WAL_HEADER_BYTES + WAL_FRAME_HEADER_BYTES) {
        uint32_t last = frame_at(d, end - WAL_FRAME_HEADER_BYTES);
        uint64_t hoff = last ? wal_frame_offset(d->hdr.page_size, last) : 0;

        if (last && hoff >= off && hoff + WAL_FRAME_HEADER_BYTES <= end) {
            memcpy(d->cached, (const uint8_t *)buf + (hoff - off), WAL_FRAME_HEADER_BYTES);
            d->cached_off = hoff;
        }
    }

    /* A correctly salted frame after a zero-salted commit frame: SQLite finished that
     * transaction without rewriting its checksums (the SQLite-bug rule in decoder.h). */
    if (d->unsalted_commit > d->committed && f1 > d->unsalted_commit) {
        struct wal_frame_header nx;
        bool ok;

        rc = frame_header_now(d, &w, d->unsalted_commit + 1, &nx, &ok, err);
        if (rc)
            return rc;
        if (ok && nx.salt1 == d->hdr.salt1 && nx.salt2 == d->hdr.salt2) {
            rc = settle_unsalted(d, &w, err);
            if (rc)
                return rc;
        }
    }
    if (cand != 0 && frame_end(d, cand) > d->hwm)
        cand = 0; /* settling made the stale bytes after it untrusted again */

    if (cand == 0)
        return 0;
    return validate_to(d, &w, cand, err);
}

int wal_decoder_truncated(struct wal_decoder *d, uint64_t size, struct err *err)
{
    if (d->cached_off != NO_OFFSET && d->cached_off + WAL_FRAME_HEADER_BYTES > size)
        d->cached_off = NO_OFFSET;
    if (!d->have_header)
        return 0;
    if (size == 0 || size < frame_end(d, d->committed)) {
        reset_sequence(d);
        if (d->ops.on_truncate)
            return d->ops.on_truncate(d->arg, size, err);
        return 0;
    }
    if (size < d->hwm)
        d->hwm = size;
    return 0;
}

int wal_decoder_recheck(struct wal_decoder *d, struct err *err)
{
    struct wsrc none = {0, NULL, 0};
    uint32_t limit;
    int rc;

    if (!d->have_header)
        return 0;
    limit = frames_below(d, d->hwm);
    if (limit <= d->committed)
        return 0;
    rc = advance(d, &none, limit, false, err);
    if (d->pending <= d->committed)
        d->pending = 0;
    return rc;
}

uint32_t wal_decoder_committed(const struct wal_decoder *d)
{
    return d->committed;
}

uint64_t wal_decoder_committed_end(const struct wal_decoder *d)
{
    return d->have_header ? frame_end(d, d->committed) : 0;
}

bool wal_decoder_checksum(const struct wal_decoder *d, uint32_t out[2])
{
    if (!d->have_header)
        return false;
    out[0] = d->cksum[0];
    out[1] = d->cksum[1];
    return true;
}

bool wal_decoder_header(const struct wal_decoder *d, struct wal_header *out)
{
    if (!d->have_header)
        return false;
    *out = d->hdr;
    return true;
}

uint32_t wal_decoder_page_size(const struct wal_decoder *d)
{
    return d->have_header ? d->hdr.page_size : 0;
}
