/* wal/replicator.h - the replication engine: every committed WAL transaction of every database
 * staged on local disk and uploaded to S3 in the libSQL "bottomless" layout (wal/layout.h).
 *
 * Objects: one struct replicator per process (S3 client, configuration, threads); one
 *          struct repl_db per database file (db_name = its escaped path, see layout.h).
 * Feeding: the FUSE glue (fs/replica.c) calls the repl_wal_* / repl_db_* hooks around every
 *          write, truncate, fsync, unlink and rename of a database and its "-wal". The decoder
 *          (wal/decoder.h) turns the -wal writes into committed frame ranges. wal/ knows
 *          nothing of FUSE: the same hooks are driven by a SQLite VFS shim in the unit tests.
 * Pipeline: commit (decoder, caller's thread) -> staging: a stager thread copies committed
 *          frames (pread of the backing -wal) into segment files under
 *          <staging_dir>/<db dir>/<gen>/, whole transactions only, cut every batch_interval_ms
 *          or batch_max_frames frames -> uploader threads PUT the segments (compressed) as
 *          "<first>-<last>-<ts>.<ext>", in order per database, retrying with backoff forever
 *          while running; the segments cut within one batch interval (a WAL restart cuts one,
 *          many a second under load) go up together as one batch of at most batch_max_frames
 *          -> the persisted "uploaded up to" watermark advances contiguously.
 *          .meta / .dep go before the first batch of a generation.
 *          A WAL restart (new header, frames from 1 again) continues the generation: its
 *          frames are numbered on and rechained onto the generation's checksum chain, unless
 *          continue_generations is off or a snapshot is due. A truncation, a deleted -wal or
 *          a due snapshot ends it; the next commit begins one whose .dep names it.
 *          Snapshots (db.<ext> + .changecounter) are taken for the first generation and when
 *          the WAL shipped since the last snapshot exceeds both snapshot_wal_pct % of the db
 *          size and snapshot_wal_min_mib, or the chain reaches snapshot_max_gens; a snapshot
 *          thread reads the db file in the background while repl_db_before_write saves the old
 *          contents of pages it has not read yet (copy-on-write into staging), so the snapshot
 *          is the exact db state at the start of its generation.
 * Crash:   nothing committed is lost: frames stay in the backing -wal until staged, and
 *          repl_wal_before_write / _before_truncate / repl_wal_unlinked stage them
 *          synchronously before SQLite may overwrite or drop them. State files are written with
 *          fsync + rename + directory fsync, carry a checksum, and alternate between two slots
 *          so a torn one is detected and the other used. repl_db_open rescans the -wal and
 *          uploads what was committed but not yet in S3 (at most once per frame range).
 * Threads: hooks may be called from any thread; per-db calls of the WAL hooks must be
 *          serialised by the caller (the FUSE session thread does). They never touch the
 *          network; in the common case they take one uncontended mutex and decode the bytes.
 *          repl_wal_fsync (durable mode), repl_flush and repl_db_open may block.
 *          Lock order: replicator.mu -> db.stage_mu -> db.snap_mu -> db.mu (see replicator.c).
 * Owns:    struct replicator borrows the s3 client (which must outlive it) and owns every
 *          repl_db. repl_new() -> repl_start() -> [repl_flush()] -> repl_free().
 * Lease:   one writer per db_name: the first upload of a database takes the lease object
 *          "<db_name>.lease" (owner = this staging directory's id, expiry renewed while
 *          running, released by repl_free); a database whose lease another writer holds is
 *          not uploaded (staged locally; status last_error / lease_blocked name the holder)
 *          until the lease is free again, then the bucket is re-checked (divergence rules of
 *          repl_db_open). Details at "lease" in replicator.c.
 * Errors:  0 or a positive errno with *err. S3 trouble never fails a hook: it is recorded
 *          (status last_error, outage log lines) and retried. The one hook failure the app
 *          sees: a full staging disk when committed frames must be staged before SQLite reuses
 *          or truncates the WAL (repl_wal_before_write / _before_truncate return ENOSPC). */
#ifndef BFS_WAL_REPLICATOR_H
#define BFS_WAL_REPLICATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "s3/s3.h"
#include "wal/compress.h"

#define REPL_DEFAULT_BATCH_INTERVAL_MS 1000u
#define REPL_DEFAULT_BATCH_MAX_FRAMES 10000u
#define REPL_DEFAULT_SNAPSHOT_MAX_GENS 20u
#define REPL_DEFAULT_SNAPSHOT_WAL_PCT 100u
#define REPL_DEFAULT_SNAPSHOT_WAL_MIN_MIB 64u
#define REPL_DEFAULT_DURABLE_TIMEOUT_MS 30000u
#define REPL_DEFAULT_UPLOADERS 2u
#define REPL_DEFAULT_LEASE_TTL_MS 30000u
#define REPL_STATE_DIR_MODE 0700

struct repl_conf {
    const char *staging_dir;      /* required: e.g. BACKING_DIR/.bottomless (created, 0700) */
    uint32_t batch_interval_ms;   /* cut a batch at most this long after its first commit */
    uint32_t batch_max_frames;    /* ...or when this many frames are pending */
    enum compression compression; /* batches and snapshots (COMP_ZSTD default) */
    int compression_level;        /* 0 = library default */
    bool durable;                 /* repl_wal_fsync waits until S3 has every earlier commit */
    uint32_t durable_timeout_ms;  /* ...then EIO */
    uint32_t snapshot_max_gens;   /* snapshot when the chain since the last one reaches this */
    uint32_t snapshot_wal_pct;    /* ...or WAL bytes shipped since it exceed this % of db size */
    uint32_t snapshot_wal_min_mib; /* ...and this many MiB (0: no floor; see gen_begin) */
    bool continue_generations;    /* a WAL restart continues the open generation unless the
                                     snapshot policy wants a snapshot (default true) */
    unsigned n_uploaders;         /* upload threads */
    bool wal_cached;              /* the -wal's writes reach us late, through the kernel's
                                     writeback cache, unordered with the db file's: only an
                                     fsync of the -wal orders them (fs -o writeback) */
    uint32_t lease_ttl_ms;        /* writer lease "<db_name>.lease" (min 3000; renewed every
                                     third of it; see "lease" in replicator.c) */
    /* Optional (NULL: committed frames are always copied out of the -wal before SQLite may
     * overwrite them). Moves the -wal at wal_path (absolute, as given to repl_db_open) to
     * stash (in staging_dir) and puts an empty file of the same size in its place, which
     * every open of the -wal then uses. Called on the hot path, from repl_wal_before_write /
     * _before_truncate only (the daemon's write, fallocate and truncate hooks). 0, or a
     * positive errno with nothing changed (frames are copied then). See "stolen WALs" in
     * replicator.c. */
    int (*replace_wal)(void *arg, const char *wal_path, const char *stash);
    void *replace_arg;
};
/* Defaults above; staging_dir NULL. */
void repl_conf_init(struct repl_conf *c);

struct replicator;
struct repl_db;

/* Creates the staging directory. No threads yet (the daemon may still fork). conf is copied;
 * s3 is borrowed. NULL with *err on failure. */
struct replicator *repl_new(const struct repl_conf *conf, struct s3_client *s3, struct err *err);
/* Starts the stager, uploader and snapshot threads. */
int repl_start(struct replicator *r, struct err *err);
/* Waits until every transaction committed before the call (and every pending snapshot) is
 * stored in S3: 0, or ETIMEDOUT after timeout_ms (err says what is still pending and the last
 * S3 error, e.g. the endpoint is unreachable). Staging stays on disk for the next start. */
int repl_flush(struct replicator *r, uint32_t timeout_ms, struct err *err);
/* Stops the threads (without flushing: call repl_flush first) and frees every repl_db.
 * NULL is a no-op. */
void repl_free(struct replicator *r);

/* ---- databases ----
 * db_name: the bucket name (layout_db_name_valid); db_path / wal_path: the backing files.
 * Called when a database is seen (opened, created, or found at startup). Loads the persisted
 * state (<staging_dir>/<escaped db_name>/), rescans an existing -wal and stages the committed
 * frames not yet staged/uploaded, and chooses the generation: resume ours when the state is
 * consistent with the local -wal; otherwise start a new one (+ snapshot). Before the first
 * upload the bucket is checked: when its newest generation for db_name is not ours (the
 * bucket moved on elsewhere) a warning names both and a new generation with .dep to the
 * bucket's newest and a snapshot is started - nothing local or remote is overwritten.
 * Opening a db_name that is already open returns the same handle (reference counted).
 * Never touches the network. NULL with *err on failure (bad name, staging not writable). */
struct repl_db *repl_db_open(struct replicator *r, const char *db_name, const char *db_path,
                             const char *wal_path, struct err *err);
/* Drops a reference. Replication of what was committed continues in the background until
 * repl_free (staged data is never dropped). NULL is a no-op. */
void repl_db_close(struct repl_db *db);

/* ---- hot path (FUSE session thread; non-blocking in the common case) ----
 * -wal file. before_*: the old bytes are still in place: committed frames that the write or
 * truncate would overwrite or drop and that are not staged yet are staged now (synchronously).
 * They return 0 (go ahead) or ENOSPC / EDQUOT: the staging disk is full and those frames are
 * still unstaged, so the caller must NOT apply the change and must give the app that errno
 * (SQLite then reports "database or disk is full" and retries later; nothing committed is
 * lost). Any other staging failure returns 0 (logged, status last_error; the frames are lost
 * to the bucket and the next generation starts with a snapshot).
 * after_write: buf/len = the bytes actually written at off (call only for successful writes;
 * len may be the short count). after_truncate: the new size. unlinked: the -wal was deleted
 * (the replicator stages what is left from its own open fd, then lets it go). */
int repl_wal_before_write(struct repl_db *db, uint64_t off, size_t len);
void repl_wal_after_write(struct repl_db *db, uint64_t off, const void *buf, size_t len);
int repl_wal_before_truncate(struct repl_db *db, uint64_t size);
void repl_wal_after_truncate(struct repl_db *db, uint64_t size);
void repl_wal_unlinked(struct repl_db *db);
/* fsync/fdatasync of the -wal (after the backing fsync succeeded; call on a worker thread).
 * Durable mode: blocks until every transaction committed before the call is in S3; EIO when
 * durable_timeout_ms passes. Otherwise returns 0 at once. */
int repl_wal_fsync(struct repl_db *db);

/* Main db file: before a write / truncate is applied (copy-on-write for a running snapshot,
 * which costs a pread + pwrite of the pages it has not read yet; otherwise nothing). */
void repl_db_before_write(struct repl_db *db, uint64_t off, size_t len);
void repl_db_before_truncate(struct repl_db *db, uint64_t size);
/* After any write of the main db file (journal-mode detection reads header bytes 18..19 when
 * off == 0). Optional: the stager also re-checks the header of idle databases. */
void repl_db_after_write(struct repl_db *db, uint64_t off, const void *buf, size_t len);

/* The database file was deleted: its pending uploads are dropped and a tombstone
 * "<db_name>.tombstone" (now) is uploaded in the background. Consumes the handle's reference
 * (do not call repl_db_close afterwards). */
void repl_db_unlinked(struct repl_db *db);
/* The database was renamed: returns the handle of the new name (fresh generation + snapshot,
 * the current -wal restaged from frame 1); the old name gets a tombstone. Consumes db's
 * reference. NULL with *err on failure (then db is still consumed and tombstoned). */
struct repl_db *repl_db_renamed(struct repl_db *db, const char *new_db_name,
                                const char *new_db_path, const char *new_wal_path, struct err *err);

/* ---- status ---- */
#define REPL_NAME_MAX 1024
struct repl_db_status {
    char db_name[REPL_NAME_MAX];
    char generation[40];           /* "" before the first generation */
    const char *journal_mode;      /* "wal", "delete" (any rollback journal mode), "unknown" */
    bool is_protected;             /* false: rollback-journal mode, not replicated */
    uint32_t last_committed_frame; /* in the current generation */
    uint32_t last_uploaded_frame;  /* in the current generation */
    int64_t last_commit_ms;        /* unix ms of the last commit seen (0 = none) */
    int64_t last_upload_ms;        /* unix ms of the last successful batch PUT (0 = none) */
    double lag_s;                  /* 0 when everything committed is in S3, else now - oldest
                                      commit not yet in S3 */
    uint64_t staged_bytes;         /* segment bytes on local disk not yet uploaded */
    uint64_t n_generations;        /* generations started by this process */
    uint64_t n_snapshots;          /* snapshots uploaded by this process */
    uint64_t n_batches;            /* batches uploaded by this process */
    uint64_t n_wals_taken;         /* segments staged by taking the -wal (see replicator.c) */
    bool snapshot_pending;
    bool s3_outage;         /* uploads currently failing */
    bool lease_blocked;     /* another writer holds the db's lease: nothing uploaded */
    char lease_holder[256]; /* ...its description (id, host, pid, staging dir) */
    char last_error[512];   /* "" when the last attempt succeeded */
};
typedef void repl_status_fn(void *arg, const struct repl_db_status *st);
/* Calls fn once per database (under no replicator lock held across fn... see .c). */
void repl_status_each(struct replicator *r, repl_status_fn *fn, void *arg);
int repl_db_status(struct repl_db *db, struct repl_db_status *out);
/* JSON for MOUNT/.bottomless/status: {"databases":[{...}, ...]} (appended to out). */
int repl_status_json(struct replicator *r, struct buf *out);

#endif
