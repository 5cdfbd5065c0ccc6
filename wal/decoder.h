/* wal/decoder.h - incremental decoder for one SQLite "-wal" file: finds committed transactions
 * from the bytes the app writes, as they land.
 *
 * In/out:  the caller applies each write/ftruncate of the -wal to its backing file first, then
 *          tells the decoder (wal_decoder_wrote / wal_decoder_truncated). The decoder reports,
 *          synchronously from inside those calls, every transaction that has become committed
 *          (on_commit), every WAL restart (on_restart) and the end of a sequence by truncation
 *          (on_truncate). It may read bytes of the file back through ops->read (pread on the
 *          backing -wal fd); it never writes.
 * Rules:   (format: wal/walfmt.h, SQLite wal.c; bottomless-format.md Appendix A)
 *          - A transaction first..last is committed when frame `last` has db_pages != 0, every
 *            frame committed+1..last has the header's salts, and the cumulative checksum chain,
 *            seeded from the last committed frame (or the header checksum), validates through
 *            `last`. Frames of an open transaction (possibly rewritten in place, with zeroed
 *            salts/checksums until SQLite rewrites them at commit) are never reported; a torn or
 *            corrupt tail is never reported, nor anything after it.
 *          - SQLite's sync padding (copies of the commit frame, synchronous=FULL with psow=0)
 *            arrives as further one-frame commits.
 *          - SQLite bug (seen with 3.40.1, Debian 12; fixed in later releases): after ROLLBACK TO
 *            a savepoint whose changes had spilled and been rewritten in place, the commit's
 *            frames are left with zero salts/checksums and never rewritten, and later frames
 *            chain from a stale value. The live SQLite treats the transaction as committed (and
 *            checkpoints it); its own crash recovery would drop it and everything after it. The
 *            decoder accepts such a transaction only on proof that SQLite finished it: the
 *            frames after the last valid one are all zero-salted, the last is a commit frame,
 *            and SQLite then appends a correctly salted frame after it or writes a new header.
 *            From then on, until the next restart, commits are reported with `rechained` set:
 *            their stored salts/checksums do not form the chain, and the caller must rewrite
 *            them with wal_frames_rechain() (from prev1/prev2) before shipping. Their page
 *            bytes, page numbers and db sizes are what SQLite committed. A truncation right
 *            after such a commit (wal_checkpoint(TRUNCATE)) loses it: not handled; a scan never
 *            applies this rule (it cannot tell such a commit from one torn by a crash).
 *          - A valid 32-byte header written at offset 0 that differs from the current one (or is
 *            the first) is a restart: on_restart(new header), then frames count from 1 again.
 *            Rewriting an identical header is not a restart. An invalid/torn header is ignored.
 *            A restart may be followed by no commit at all, and then by another restart.
 *          - A truncation to 0, or below the end of the last committed frame, ends the sequence:
 *            on_truncate(size), after which nothing is decoded until a new header is written.
 *            A truncation at or above the committed end (journal_size_limit) is silent.
 * Cost:    a write that is not a commit candidate costs O(1) (plus, at most once per write, a
 *          24-byte read-back of a frame header the write did not contain and the decoder did not
 *          keep; only in-place page rewrites need it). A candidate (a write that completes a
 *          commit frame, or touches one that is already complete: the checksum-rewrite case)
 *          validates frames committed+1..candidate, reading them back in chunks (bytes inside
 *          the written buffer are taken from it). The running checksum at the last committed
 *          frame is kept, so committed frames are never re-read.
 * Owns:    its scratch buffer; wal_decoder_new() -> wal_decoder_free(). Buffers passed in are
 *          borrowed for the call only.
 * Threads: not thread-safe: one decoder per -wal file, calls serialised by the caller.
 *          Callbacks run on the caller's thread, inside the decoder call; they must not call
 *          back into the same decoder.
 * Errors:  0 or a positive errno with *err filled (err may be NULL): an error of ops->read, an
 *          error returned by a callback, ENOMEM. Bad bytes in the file are not errors: they are
 *          simply not committed. */
#ifndef BFS_WAL_DECODER_H
#define BFS_WAL_DECODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "wal/walfmt.h"

struct wal_decoder;

/* One committed transaction: frames first..last (1-based, inclusive) of the current WAL header.
 * Frame n starts at byte wal_frame_offset(page_size, n); the whole range is
 * [first_off, first_off + n_bytes). */
struct wal_commit {
    uint32_t first, last;
    uint32_t db_pages;       /* database size in pages after this commit (frame `last`) */
    uint32_t page_size;      /* 512..65536 */
    uint32_t salt1, salt2;   /* the header's (= every frame's) salts */
    uint32_t ckpt_seq;       /* the header's checkpoint sequence */
    uint32_t cksum1, cksum2; /* cumulative checksum after frame `last` (= its stored checksum
                              * unless rechained) */
    uint32_t prev1, prev2;   /* cumulative checksum before frame `first` (seed1/2 if first=1) */
    uint32_t seed1, seed2;   /* header checksum: seed of frame 1 (bottomless .meta) */
    bool rechained;          /* stored salts/checksums of first..last are not the chain: ship
                              * them through wal_frames_rechain(prev) (see Rules) */
    bool big_endian;         /* checksum byte order (magic 0x377f0683) */
    uint64_t first_off;      /* byte offset of frame `first` */
    uint64_t n_bytes;        /* (last - first + 1) * (24 + page_size) */
};

struct wal_decoder_ops {
    /* Required. Reads up to len bytes at off of the -wal (as it is now) into buf; *got_out is
     * the byte count, less than len only at end of file. 0 or a positive errno (then the
     * decoder call fails with it). */
    int (*read)(void *arg, uint64_t off, void *buf, size_t len, size_t *got_out, struct err *err);
    /* Optional (NULL: ignored). A transaction became committed. Returning nonzero stops the
     * decoder at the previous commit: the error is returned by the decoder call and the same
     * transaction is reported again at the next candidate or wal_decoder_recheck(). */
    int (*on_commit)(void *arg, const struct wal_commit *c, struct err *err);
    /* Optional. A new WAL header (restart or first header); the committed count is now 0.
     * The decoder adopts the header even if this returns nonzero (the error is returned). */
    int (*on_restart)(void *arg, const struct wal_header *h, struct err *err);
    /* Optional. The sequence ended by truncation to size (see Rules). State is reset even if
     * this returns nonzero. */
    int (*on_truncate)(void *arg, uint64_t size, struct err *err);
};

/* ops is copied; arg is passed to every op. NULL (ENOMEM/EINVAL in *err) on failure. The new
 * decoder knows no header: call wal_decoder_scan() for an existing file. */
struct wal_decoder *wal_decoder_new(const struct wal_decoder_ops *ops, void *arg, struct err *err);
void wal_decoder_free(struct wal_decoder *d); /* NULL is a no-op */

/* Startup: forgets all state, then reads the file once (header, then frames in chunks, up to
 * file_size or the first short read), calling on_restart for a valid header (none if the file
 * is shorter than 32 bytes or its header is invalid: SQLite treats that WAL as empty) and
 * on_commit for each committed transaction, in order. Leaves the decoder at the last commit. */
int wal_decoder_scan(struct wal_decoder *d, uint64_t file_size, struct err *err);

/* len bytes of buf were just written at off (and are already in the backing file). */
int wal_decoder_wrote(struct wal_decoder *d, uint64_t off, const void *buf, size_t len,
                      struct err *err);
/* The file was just truncated (or extended) to size. */
int wal_decoder_truncated(struct wal_decoder *d, uint64_t size, struct err *err);

/* Re-validates the tail written since the last commit (frames committed+1.. up to the end of
 * what was written) and reports what commits: use after an on_commit error was resolved. */
int wal_decoder_recheck(struct wal_decoder *d, struct err *err);

/* Queries (O(1)). */
/* Frames committed in the current sequence (the `last` of the last reported commit; 0 when
 * none, after a restart or truncation). */
uint32_t wal_decoder_committed(const struct wal_decoder *d);
/* Byte offset just past the last committed frame (32 after a header with no commit; 0 with no
 * header). */
uint64_t wal_decoder_committed_end(const struct wal_decoder *d);
/* Cumulative checksum after the last committed frame (the header checksum when none), in
 * the shipped (rechained) chain. false when there is no header. */
bool wal_decoder_checksum(const struct wal_decoder *d, uint32_t out[2]);
/* Copies the current header; false when there is none (*out untouched). */
bool wal_decoder_header(const struct wal_decoder *d, struct wal_header *out);
/* Page size of the current header; 0 when none. */
uint32_t wal_decoder_page_size(const struct wal_decoder *d);

#endif
