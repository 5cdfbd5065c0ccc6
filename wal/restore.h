/* wal/restore.h - restore a database file from a bottomless bucket.
 * What:    choose a generation (newest / by id / newest created at or before a UTC time),
 *          honour the tombstone (unless opts.ignore_tombstone), find a snapshot (db.zstd,
 *          db.gz, db.raw, legacy db.db)
 *          following .dep (<= LAYOUT_MAX_DEP_DEPTH, cycles and missing parents are errors),
 *          replay the WAL batches of every generation from there to the target, oldest first,
 *          verifying the checksum chain seeded by .meta, applying only complete transactions,
 *          into a temp file next to the target; fsync, PRAGMA integrity_check, rename over the
 *          target, fsync the directory, remove stale -wal/-shm.
 * Rules:   the algorithm and its choices are documented in docs/format.md ("Restore") and at
 *          the top of restore.c; the format in bottomless-format.md §5 and §10(b).
 * Corrupt: a corrupt object (checksum mismatch, bad compression, truncated body, short .meta)
 *          or a missing batch (gap) stops replay at the last consistent transaction: by default
 *          the restore succeeds with result.partial set and result.reason naming the key and
 *          what was wrong; with opts.strict it fails (EBADMSG, or ENOENT for a gap) and the
 *          target is untouched. A corrupt snapshot falls back to the .dep parent if there is one.
 *          The target is never left half-written (temp file + rename).
 * Memory:  bounded: pending transaction pages spill to an unlinked scratch file; batches and
 *          the snapshot are downloaded to scratch files by opts.parallel threads.
 * Threads: restore_run is reentrant; it starts and joins its own download threads. The
 *          progress callback runs on the calling thread.
 * Errors:  0 or a positive errno with *err set: ENOENT no generation / generation not found /
 *          tombstoned / missing .dep parent; EBADMSG corrupt (strict) or .dep chain too deep or
 *          cyclic or integrity_check failed; EINVAL bad options; S3 errors as s3.h maps them. */
#ifndef BFS_WAL_RESTORE_H
#define BFS_WAL_RESTORE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "s3/s3.h"
#include "wal/layout.h"

/* done/total in bytes of objects downloaded (total grows once when the plan is known). */
typedef void restore_progress_fn(void *arg, uint64_t done, uint64_t total);

struct restore_opts {
    const char *db_name;      /* required */
    const char *target;       /* required: output file path (its directory must exist) */
    const struct gen_id *gen; /* NULL = newest (or by time) */
    bool has_time;            /* point in time: newest generation created <= time_s, and */
    int64_t time_s;           /*   only batches with ts <= time_s */
    bool strict;              /* fail instead of a partial restore */
    bool ignore_tombstone;    /* restore a generation that <db>.tombstone hides (deleted db) */
    bool no_verify_crc;       /* skip the checksum chain check (LIBSQL_BOTTOMLESS_VERIFY_CRC) */
    bool skip_integrity;      /* skip PRAGMA integrity_check */
    int parallel;             /* download threads, 0 = 4 */
    const char *scratch_dir;  /* NULL = directory of target */
    restore_progress_fn *progress;
    void *progress_arg;
};

struct restore_result {
    struct gen_id gen;          /* generation restored (target) */
    struct gen_id snapshot_gen; /* generation whose snapshot was used (if has_snapshot) */
    bool has_snapshot;          /* false: replayed from an empty file */
    char snapshot_key[LAYOUT_KEY_MAX];
    unsigned n_generations;     /* generations in the replayed chain (incl. snapshot one) */
    uint64_t frames_applied;    /* frames of complete transactions written */
    uint64_t txns_applied;      /* complete transactions written */
    uint32_t last_frame;        /* last applied frame number in last_frame_gen */
    struct gen_id last_frame_gen;
    uint64_t last_batch_ts;     /* ts of the batch holding the last applied commit (0 = none) */
    uint32_t page_size;         /* 0 when unknown (empty database) */
    uint64_t db_size;           /* final file size in bytes */
    uint64_t bytes_downloaded;
    bool partial;               /* replay stopped early because of corruption or a gap */
    char reason[512];           /* why partial (names the key); "" otherwise */
    bool integrity_ok;          /* PRAGMA integrity_check said ok (or skipped: true) */
};

void restore_opts_init(struct restore_opts *o);

/* Full restore into opts->target (see top). result may be NULL. */
int restore_run(struct s3_client *c, const struct restore_opts *opts,
                struct restore_result *result, struct err *err);

/* Chooses the generation restore_run would restore (newest / by id / by time). The tombstone
 * is NOT applied here: restore_run and the mount's listing check it with layout_read_tombstone
 * and layout_is_tombstoned. ENOENT when none. */
int restore_choose_generation(struct s3_client *c, const char *db, const struct gen_id *gen,
                              bool has_time, int64_t time_s, struct gen_id *out,
                              struct err *err);

/* The .dep chain of gen, newest first: chain[0] = gen, last = the generation with a snapshot
 * (*has_snapshot_out) or the oldest one without .dep. Caller frees *chain_out. */
int restore_chain(struct s3_client *c, const char *db, const struct gen_id *gen,
                  struct gen_id **chain_out, size_t *n_out, bool *has_snapshot_out,
                  struct err *err);

/* What `ls -v` shows for one generation. */
struct gen_info {
    struct gen_id gen;
    int64_t created_s;
    bool has_changecounter;
    uint32_t changecounter;
    bool has_meta;
    struct gen_meta meta;
    bool has_dep;
    struct gen_id dep;
    uint32_t last_consistent_frame; /* `last` of the last batch name in key order (§4.8) */
    size_t n_batches;
    uint64_t batch_bytes;
    bool has_snapshot;
    char snapshot_key[LAYOUT_KEY_MAX];
    uint64_t snapshot_size;
    time_t snapshot_mtime;
    size_t n_objects;
};
int restore_gen_info(struct s3_client *c, const char *db, const struct gen_id *gen,
                     struct gen_info *out, struct err *err);

/* Uploads the database file at path as gen's snapshot: db.<ext> (compressed via a temp file
 * in the file's directory) then .changecounter (header bytes 24..27, 0 if the file is shorter).
 * Used by `snapshot` (after restoring the parent chain) and by tools. */
int restore_upload_snapshot(struct s3_client *c, const char *db, const struct gen_id *gen,
                            const char *path, enum compression comp, struct err *err);

/* Size in bytes the newest restorable state of db would have (for lazy restore in the
 * mount): the last complete transaction's db size of the newest generation's chain, else the
 * snapshot size. Downloads only the last batch(es) of the target generation when it can;
 * ENOENT when there is no generation. */
int restore_expected_size(struct s3_client *c, const char *db, uint64_t *size_out,
                          struct err *err);

#endif
