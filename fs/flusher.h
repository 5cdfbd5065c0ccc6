/* fs/flusher.h - writeback mode (-o writeback[=MS]): every MS milliseconds, push the kernel's
 * dirty pages of every live "-wal" file out to the daemon, so the replicator sees each commit
 * within MS even though the kernel's writeback cache would hold it for ~30 s; and, first,
 * those of its database (checkpoints of synchronous=OFF connections sync neither file).
 * How:     a timer thread asks the mount helper child (fs/mounthelper.h: never a thread of the
 *          daemon, never the session thread) to open MOUNTPOINT/path and run
 *          sync_file_range(WRITE|WAIT) on it: the kernel sends the dirty pages as WRITE
 *          requests, without an FSYNC of the backing file.
 * Owns:    its thread and the set of registered paths (reference counted: one per app open).
 * Threads: flusher_add/remove are safe from any thread (one mutex, never held across I/O).
 * Errors:  flusher_new returns NULL with err set. */
#ifndef BFS_FS_FLUSHER_H
#define BFS_FS_FLUSHER_H

#include <stdint.h>

#include "common/err.h"
#include "fs/mounthelper.h"

struct flusher;

/* mh: borrowed, outlives the flusher. */
struct flusher *flusher_new(struct mounthelper *mh, uint32_t period_ms, struct err *err);
/* Stops the thread (waits at most a bounded time for a flush in progress) and frees. */
void flusher_free(struct flusher *fl);
/* path relative to the mount root. NULL fl is a no-op. */
void flusher_add(struct flusher *fl, const char *path);
void flusher_remove(struct flusher *fl, const char *path);
/* The -wal at path was deleted (SQLite's last connection is closing): no syncs of it or its
 * database from now on, until flusher_add of the same path; the entry itself stays until its
 * last flusher_remove. For the unmount right after the app exits: with
 * mounthelper_cancel_syncs and a wait for the helper to be idle, nothing of the database is
 * held open through the mount once the app's unlink returns (else fusermount3 -u: EBUSY). */
void flusher_retire(struct flusher *fl, const char *path);

#endif
