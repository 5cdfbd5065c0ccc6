/* wal/restore_replay.h - applies decompressed WAL batch bodies to a database file: the frame
 * parser, checksum-chain verifier and transaction applier behind restore_run (no S3 here).
 * In/out:  per generation: replay_gen_begin(.meta) then, per batch in frame order,
 *          replay_batch_begin(first, last) / replay_feed(bytes...) / replay_batch_end();
 *          replay_gen_end() drops an uncommitted tail. Frames of a transaction are held
 *          (in memory up to REPLAY_MEM_PENDING bytes, then in an unlinked scratch file) until
 *          its commit frame; then each page is written at (pgno-1)*page_size (the last copy of a
 *          page wins) and the file is truncated/extended to db_pages*page_size.
 * Checks:  frame numbers contiguous across batches of a generation; the body holds exactly
 *          last-first+1 frames; cumulative checksum from the .meta seed, little-endian words
 *          first, big-endian if frame 1 of the generation does not match little-endian;
 *          pgno != 0. Violations are EBADMSG naming the frame and what was wrong; after an
 *          error the pending transaction is dropped and the file holds the last complete one.
 * Owns:    its buffers and scratch fd; not the target fd. replay_new() -> replay_free().
 * Threads: not thread-safe; one replay per restore. */
#ifndef BFS_WAL_RESTORE_REPLAY_H
#define BFS_WAL_RESTORE_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "wal/layout.h"

#define REPLAY_MEM_PENDING (8u << 20)

struct replay;

struct replay_stats {
    uint64_t frames_applied; /* frames of complete transactions written */
    uint64_t txns_applied;
    uint32_t last_commit_frame; /* frame number of the last applied commit (this generation) */
    uint32_t db_pages;          /* size after the last applied commit */
    uint32_t page_size;         /* of the current / last generation (0 = none yet) */
    bool big_endian;            /* checksum words of the current generation */
    uint64_t pending_frames;    /* frames waiting for a commit */
};

/* target_fd: the file being rebuilt (pwrite / ftruncate). scratch_dir: where the spill file
 * goes (created only if a transaction exceeds REPLAY_MEM_PENDING). */
struct replay *replay_new(int target_fd, const char *scratch_dir, struct err *err);
void replay_free(struct replay *r);

/* EBADMSG when the page size in meta is not a valid SQLite page size. */
int replay_gen_begin(struct replay *r, const struct gen_meta *meta, bool verify_crc,
                     struct err *err);
/* Frames first..last follow; only frames <= apply_last are verified and applied (the rest is
 * superseded by a later upload and skipped). first must be the next frame of the generation. */
int replay_batch_begin(struct replay *r, uint32_t first, uint32_t last, uint32_t apply_last,
                       struct err *err);
int replay_feed(struct replay *r, const uint8_t *p, size_t len, struct err *err);
int replay_batch_end(struct replay *r, struct err *err);
/* Ends the generation: drops uncommitted frames; the next generation restarts at frame 1. */
void replay_gen_end(struct replay *r);
void replay_get_stats(const struct replay *r, struct replay_stats *out);

/* With no snapshot under the chain the base is an empty file, so every page up to the
 * database size must come from some applied frame; a generation whose snapshot was never
 * uploaded has no such WAL. replay_track_pages() (before the first generation) keeps a bitmap
 * of written pages (up to REPLAY_TRACK_MAX_PAGES pages; a larger database, or a page size that
 * changes, stops tracking). replay_first_missing_page() is the first page <= the current size
 * no applied frame wrote (SQLite's lock-byte page, which it never writes, excepted), 0 when none
 * or not tracked. */
#define REPLAY_TRACK_MAX_PAGES (1u << 26) /* an 8 MiB bitmap */
void replay_track_pages(struct replay *r);
uint32_t replay_first_missing_page(const struct replay *r);

#endif
