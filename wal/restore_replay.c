/* wal/restore_replay.c - WAL batch replay into a database file (contract in restore_replay.h).
 * A batch body is frames copied verbatim from a -wal file: 24-byte header (pgno, db size after
 * commit, salt-1, salt-2, checksum-1, checksum-2; big-endian) + page. The checksum chain
 * (walfmt.h) starts at .meta's pair for frame 1 of a generation and runs across batches.
 * Salts are not checked (bottomless does not store them). */
#include "wal/restore_replay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "wal/walfmt.h"

struct pending {
    uint32_t pgno;
};

struct replay {
    int target_fd;
    char *scratch_dir;
    int scratch_fd; /* -1 until needed */

    /* generation */
    bool in_gen;
    bool verify;
    bool endian_known;
    bool big_endian;
    uint32_t page_size;
    uint32_t seed[2];   /* .meta pair */
    uint32_t cksum[2];  /* running value after the last verified frame */
    uint32_t next_frame; /* next expected frame number */

    /* batch */
    bool in_batch;
    uint32_t b_first, b_last, b_apply_last;
    uint32_t b_next; /* frame number of the frame being assembled */
    uint8_t *frame;  /* 24 + page_size */
    size_t frame_fill;

    /* pending transaction */
    uint32_t *pgnos;
    size_t n_pending, cap_pending;
    uint8_t *mem; /* first mem_frames pages */
    size_t mem_frames;

    /* page coverage (replay_track_pages) */
    bool tracking;
    uint8_t *written;      /* bit pgno-1 set: some applied frame wrote page pgno */
    uint32_t written_bits; /* capacity in pages */

    struct replay_stats st;
};

struct replay *replay_new(int target_fd, const char *scratch_dir, struct err *err)
{
    struct replay *r = calloc(1, sizeof(*r));

    if (!r || !(r->scratch_dir = strdup(scratch_dir ? scratch_dir : "/tmp"))) {
        free(r);
        ERR(err, ENOMEM, "replay: out of memory");
        return NULL;
    }
    r->target_fd = target_fd;
    r->scratch_fd = -1;
    return r;
}

void replay_free(struct replay *r)
{
    if (!r)
        return;
    if (r->scratch_fd >= 0)
        close(r->scratch_fd);
    free(r->scratch_dir);
    free(r->frame);
    free(r->pgnos);
    free(r->mem);
    free(r->written);
    free(r);
}

static void drop_pending(struct replay *r)
{
    r->n_pending = 0;
}

int replay_gen_begin(struct replay *r, const struct gen_meta *meta, bool verify_crc,
                     struct err *err)
{
    if (!wal_page_size_valid(meta->page_size))
        return ERR(err, EBADMSG, "page size %u in .meta is not a valid SQLite page size",
                   meta->page_size);
    drop_pending(r);
    if (r->page_size != 0 && r->page_size != meta->page_size)
        r->tracking = false; /* pages of another size: coverage no longer means anything */
    if (r->page_size != meta->page_size) {
        free(r->frame);
        free(r->mem);
        r->mem = NULL;
        r->frame = malloc(WAL_FRAME_HEADER_BYTES + (size_t)meta->page_size);
        if (!r->frame)
            return ERR(err, ENOMEM, "replay: out of memory");
        r->mem_frames = REPLAY_MEM_PENDING / meta->page_size;
    }
    r->page_size = meta->page_size;
    r->seed[0] = r->cksum[0] = meta->cksum1;
    r->seed[1] = r->cksum[1] = meta->cksum2;
    r->verify = verify_crc;
    r->endian_known = false;
    r->big_endian = false;
    r->next_frame = 1;
    r->in_gen = true;
    r->in_batch = false;
    r->st.page_size = meta->page_size;
    r->st.last_commit_frame = 0;
    return 0;
}

int replay_batch_begin(struct replay *r, uint32_t first, uint32_t last, uint32_t apply_last,
                       struct err *err)
{
    if (!r->in_gen)
        return ERR(err, EINVAL, "replay: batch outside a generation");
    if (first != r->next_frame)
        return ERR(err, EBADMSG, "batch starts at frame %u, expected %u", first, r->next_frame);
    if (last < first || apply_last < first || apply_last > last)
        return ERR(err, EINVAL, "replay: bad batch range %u-%u/%u", first, last, apply_last);
    r->in_batch = true;
    r->b_first = first;
    r->b_last = last;
    r->b_apply_last = apply_last;
    r->b_next = first;
    r->frame_fill = 0;
    return 0;
}

static int pending_push(struct replay *r, uint32_t pgno, const uint8_t *page, struct err *err)
{
    size_t i = r->n_pending;
    int rc;

    if (i == r->cap_pending) {
        size_t cap = r->cap_pending ? r->cap_pending * 2 : 256;
        uint32_t *v = realloc(r->pgnos, cap * sizeof(*v));
        if (!v)
            return ERR(err, ENOMEM, "replay: out of memory");
        r->pgnos = v;
        r->cap_pending = cap;
    }
    if (i < r->mem_frames) {
        if (!r->mem) {
            r->mem = malloc(r->mem_frames * (size_t)r->page_size);
            if (!r->mem)
                return ERR(err, ENOMEM, "replay: out of memory");
        }
        memcpy(r->mem + i * (size_t)r->page_size, page, r->page_size);
    } else {
        if (r->scratch_fd < 0) {
            r->scratch_fd = open(r->scratch_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
            if (r->scratch_fd < 0) {
                char path[4096];
                snprintf(path, sizeof(path), "%s/.bfs-replay-XXXXXX", r->scratch_dir);
                r->scratch_fd = mkostemp(path, O_CLOEXEC);
                if (r->scratch_fd < 0)
                    return ERR(err, errno, "replay: scratch file in %s: %s", r->scratch_dir,
                               errno_name(errno));
                unlink(path);
            }
        }
        rc = fileio_pwrite_all(r->scratch_fd, page, r->page_size,
                               (uint64_t)(i - r->mem_frames) * r->page_size);
        if (rc)
            return ERR(err, rc, "replay: write scratch file: %s", errno_name(rc));
    }
    r->pgnos[i] = pgno;
    r->n_pending++;
    return 0;
}

void replay_track_pages(struct replay *r)
{
    r->tracking = true;
}

/* Marks pgnos[0..n) written and forgets pages past db_pages (a later growth brings them back
 * as zeros, so they must be written again). Stops tracking past REPLAY_TRACK_MAX_PAGES. */
static int track_commit(struct replay *r, uint32_t db_pages, struct err *err)
{
    uint32_t need = db_pages;

    for (size_t i = 0; i < r->n_pending; i++)
        if (r->pgnos[i] > need)
            need = r->pgnos[i];
    if (need > REPLAY_TRACK_MAX_PAGES) {
        r->tracking = false;
        return 0;
    }
    if (need > r->written_bits) {
        uint32_t bits = r->written_bits ? r->written_bits : 4096;
        while (bits < need)
            bits = bits > REPLAY_TRACK_MAX_PAGES / 2 ? REPLAY_TRACK_MAX_PAGES : bits * 2;
        uint8_t *w = realloc(r->written, bits / 8);
        if (!w)
            return ERR(err, ENOMEM, "replay: out of memory");
        memset(w + r->written_bits / 8, 0, (bits - r->written_bits) / 8);
        r->written = w;
        r->written_bits = bits;
    }
    for (size_t i = 0; i < r->n_pending; i++) {
        uint32_t b = r->pgnos[i] - 1;
        r->written[b / 8] |= (uint8_t)(1u << (b % 8));
    }
    for (uint32_t b = db_pages; b < r->written_bits; b++)
        r->written[b / 8] &= (uint8_t)~(1u << (b % 8));
    return 0;
}

uint32_t replay_first_missing_page(const struct replay *r)
{
    if (!r->tracking || r->page_size == 0)
        return 0;
    /* SQLite never writes the page holding byte 2^30 (its lock bytes) */
    uint32_t lock_page = (uint32_t)(0x40000000u / r->page_size) + 1;
    for (uint32_t p = 1; p <= r->st.db_pages; p++) {
        uint32_t b = p - 1;
        if (p != lock_page && (b >= r->written_bits || !(r->written[b / 8] & (1u << (b % 8)))))
            return p;
    }
    return 0;
}

static int commit_pending(struct replay *r, uint32_t db_pages, struct err *err)
{
    uint8_t *page = NULL;
    int rc = 0;

    for (size_t i = 0; i < r->n_pending; i++) {
        const uint8_t *src;
        if (i < r->mem_frames) {
            src = r->mem + i * (size_t)r->page_size;
        } else {
            size_t got = 0;
            if (!page && !(page = malloc(r->page_size)))
                return ERR(err, ENOMEM, "replay: out of memory");
            rc = fileio_pread_full(r->scratch_fd, page, r->page_size,
                                   (uint64_t)(i - r->mem_frames) * r->page_size, &got);
            if (rc || got != r->page_size) {
                rc = ERR(err, rc ? rc : EIO, "replay: read scratch file");
                goto out;
            }
            src = page;
        }
        rc = fileio_pwrite_all(r->target_fd, src, r->page_size,
                               (uint64_t)(r->pgnos[i] - 1) * r->page_size);
        if (rc) {
            rc = ERR(err, rc, "replay: write page %u: %s", r->pgnos[i], errno_name(rc));
            goto out;
        }
    }
    if (ftruncate(r->target_fd, (off_t)((uint64_t)db_pages * r->page_size)) != 0) {
        rc = ERR(err, errno, "replay: resize to %u pages: %s", db_pages, errno_name(errno));
        goto out;
    }
    if (r->tracking) {
        rc = track_commit(r, db_pages, err);
        if (rc)
            goto out;
    }
    r->st.frames_applied += r->n_pending;
    r->st.txns_applied++;
    r->st.db_pages = db_pages;
out:
    free(page);
    r->n_pending = 0;
    return rc;
}

static int frame_done(struct replay *r, struct err *err)
{
    const uint8_t *h = r->frame, *page = r->frame + WAL_FRAME_HEADER_BYTES;
    uint32_t n = r->b_next;
    struct wal_frame_header fh;

    r->b_next++;
    if (n > r->b_apply_last)
        return 0; /* superseded by a later upload */
    wal_frame_header_parse(h, &fh);
    if (r->verify) {
        uint32_t s[2] = {r->cksum[0], r->cksum[1]};
        bool ok = wal_frame_checksum_ok(r->big_endian, h, page, r->page_size, s);
        if (!ok && !r->endian_known) {
            s[0] = r->cksum[0];
            s[1] = r->cksum[1];
            ok = wal_frame_checksum_ok(true, h, page, r->page_size, s);
            if (ok)
                r->big_endian = true;
        }
        if (!ok) {
            drop_pending(r);
            return ERR(err, EBADMSG,
                       "frame %u (pgno %u): checksum mismatch (stored %08x-%08x, chain from "
                       ".meta gives %08x-%08x)",
                       n, fh.pgno, fh.cksum1, fh.cksum2, s[0], s[1]);
        }
        r->endian_known = true;
        r->cksum[0] = s[0];
        r->cksum[1] = s[1];
    }
    if (fh.pgno == 0) {
        drop_pending(r);
        return ERR(err, EBADMSG, "frame %u: page number 0", n);
    }
    int rc = pending_push(r, fh.pgno, page, err);
    if (rc)
        return rc;
    if (fh.db_pages != 0) {
        rc = commit_pending(r, fh.db_pages, err);
        if (rc)
            return rc;
        r->st.last_commit_frame = n;
    }
    return 0;
}

int replay_feed(struct replay *r, const uint8_t *p, size_t len, struct err *err)
{
    size_t fsize = WAL_FRAME_HEADER_BYTES + (size_t)r->page_size;

    if (!r->in_batch)
        return ERR(err, EINVAL, "replay: feed outside a batch");
    while (len > 0) {
        if (r->b_next > r->b_last) {
            drop_pending(r);
            return ERR(err, EBADMSG, "body longer than its name says (more than %u frames)",
                       r->b_last - r->b_first + 1);
        }
        size_t k = fsize - r->frame_fill;
        if (k > len)
            k = len;
        memcpy(r->frame + r->frame_fill, p, k);
        r->frame_fill += k;
        p += k;
        len -= k;
        if (r->frame_fill == fsize) {
            r->frame_fill = 0;
            int rc = frame_done(r, err);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int replay_batch_end(struct replay *r, struct err *err)
{
    r->in_batch = false;
    if (r->frame_fill != 0 || r->b_next != r->b_last + 1) {
        uint32_t got = r->b_next - r->b_first;
        drop_pending(r);
        return ERR(err, EBADMSG,
                   "truncated body: %u whole frames%s, name says %u (frames %u-%u)", got,
                   r->frame_fill ? " and a partial one" : "", r->b_last - r->b_first + 1,
                   r->b_first, r->b_last);
    }
    r->next_frame = r->b_apply_last + 1;
    return 0;
}

void replay_gen_end(struct replay *r)
{
    drop_pending(r);
    r->in_gen = false;
    r->in_batch = false;
}

void replay_get_stats(const struct replay *r, struct replay_stats *out)
{
    *out = r->st;
    out->big_endian = r->big_endian;
    out->pending_frames = r->n_pending;
}
