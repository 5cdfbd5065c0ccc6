/* wal/replstate.h - the replicator's persisted per-database state: which generation is being
 * written, the WAL header it belongs to, the upload watermark and the snapshot bookkeeping.
 * Format:  a fixed 96-byte little record ("BFSRST01", fields big-endian, CRC-32 of the preceding
 *          bytes last), see replstate.c. Stored in two slots, <dir>/state.0 and <dir>/state.1,
 *          each replaced with write-temp + fsync + rename + directory fsync; a save goes to
 *          the slot not holding the newest record, so a torn or lost write leaves the previous
 *          record intact. Load validates both (magic, size, CRC) and takes the valid one with
 *          the highest sequence number.
 * Owns:    nothing (plain values). Threads: the caller serialises saves of one directory.
 * Errors:  0 or a positive errno with *err; load returns ENOENT when no valid slot exists
 *          (*torn_out tells whether a damaged slot was seen and skipped). */
#ifndef BFS_WAL_REPLSTATE_H
#define BFS_WAL_REPLSTATE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "wal/layout.h"

#define REPLSTATE_BYTES 96

struct replstate {
    uint64_t seq;               /* bumped by every save */
    bool has_gen;               /* gen is meaningful */
    bool gen_open;              /* the WAL identified by salts/seed still feeds gen */
    bool snap_pending;          /* gen's snapshot was started and not yet uploaded */
    bool changed_outside;       /* the db file changed outside a WAL and is not in the bucket
                                 * as it is (replicator.c, watch_check) */
    struct gen_id gen;          /* current (or last) generation */
    uint32_t page_size;
    uint32_t salt1, salt2;      /* WAL header salts of gen */
    uint32_t seed1, seed2;      /* WAL header checksum (= .meta) */
    uint32_t uploaded;          /* frames 1..uploaded of gen are in S3 */
    uint32_t chain_since_snap;  /* generations since the last snapshot (incl. gen) */
    uint64_t wal_bytes_since_snap;
    uint64_t snap_db_size;      /* db size at the last snapshot */
};

void replstate_encode(const struct replstate *s, uint8_t out[REPLSTATE_BYTES]);
/* EBADMSG for a wrong magic/length/CRC. */
int replstate_decode(const uint8_t *p, size_t len, struct replstate *out, struct err *err);
/* Saves with seq = s->seq + 1 (s->seq is updated on success). */
int replstate_save(const char *dir, struct replstate *s, struct err *err);
int replstate_load(const char *dir, struct replstate *out, bool *torn_out, struct err *err);

#endif
