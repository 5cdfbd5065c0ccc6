/* fs/replica.h - the replication glue of the daemon: implements the hook table of fs/hooks.h
 * (replica_hooks_init, declared there) on top of the replication engine (wal/replicator.h),
 * lazy restore (fs/lazy.h) and the status file (fs/status.h).
 *
 * What:    replica_hooks_init (before the kernel mount, no threads) resolves the S3
 *          configuration and checks that the bucket is reachable with the credentials (HEAD
 *          bucket), so a wrong key, a missing bucket or an unreachable endpoint fails the
 *          mount before anything is mounted, with the cause and the fix in the message.
 *          mount_start (after the fork) builds the S3 client and the replicator, starts its
 *          threads, opens every local database of BACKING_DIR in the replicator (so staged or
 *          committed-but-not-uploaded data resumes) and lists the bucket for lazy restore.
 *          shutdown flushes with a bounded wait (flush_timeout) and logs what is left.
 * Databases: a file is a database when its first 16 bytes are "SQLite format 3\0"; checked
 *          when the file is opened, when its "-wal" is opened (the owner is the name without
 *          "-wal") and, for empty or truncated files, on the first write at offset 0.
 *          db_name = path relative to the mount root, escaped by layout_db_name_from_path().
 * Hot path: every open of a database or its -wal gets a handle pointing at one shared
 *          per-database record; writes go straight to the replicator through it (no path
 *          lookup, no glue lock). Unlink/rename of a database tombstone / move it; a rename
 *          over a database tombstones the one replaced.
 * Threads: see fs/hooks.h ([loop]/[worker]/[main]). replica.mu guards the database table,
 *          the handle list and each record's n_refs / n_fsync / dying list; it is never held
 *          across a call into the replicator, lazy or S3 (lock order: replica.mu alone).
 *          A record's db pointer is written only on the loop thread (or at start/shutdown),
 *          under replica.mu; loop hooks read it without the lock.
 * Errors:  only mount_start, fsync (durable deadline: EIO), materialise (EIO / ENOENT) and
 *          list_virtual reach the app; everything else is logged and shown in the status file. */
#ifndef BFS_FS_REPLICA_H
#define BFS_FS_REPLICA_H

#include <stdbool.h>
#include <stddef.h>

#include "fs/hooks.h"

#define REPLICA_SQLITE_MAGIC "SQLite format 3" /* + its NUL: 16 bytes */
#define REPLICA_SQLITE_MAGIC_BYTES 16

/* How the glue treats a path by its name. */
enum replica_name_kind {
    REPLICA_NAME_MAIN,    /* could be a database file */
    REPLICA_NAME_WAL,     /* "<db>-wal" */
    REPLICA_NAME_SIDECAR, /* "<db>-shm", "<db>-journal": never a database */
};

/* Pure helpers (unit-tested). */
bool replica_is_db_header(const void *p, size_t len);
enum replica_name_kind replica_name_kind(const char *path);
/* Owner of a "-wal" path ("d/app.db-wal" -> "d/app.db"); false when path is not one. */
bool replica_wal_owner(const char *path, char *out, size_t cap);
/* The mount-time bucket check message for rc (from s3_head_bucket) into out: names the cause
 * and the fix. detail is the S3 client's message. */
void replica_bucket_error(int rc, const char *bucket, const char *endpoint, const char *detail,
                          char *out, size_t cap);

#endif
