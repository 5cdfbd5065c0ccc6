/* fs/mounthelper.h - the daemon's own I/O on its mount (the WAL cache warm-up reads and the
 * writeback flusher's syncs) runs in a child process, never in a thread of the daemon.
 * Why:     a daemon thread waiting on its own mount keeps a SIGKILLed daemon from ever exiting:
 *          a request the session thread had already read is waited for uninterruptibly, and
 *          closing such a file on exit waits for a FLUSH (or, in writeback mode, for WRITEs of
 *          dirty pages); the process then never releases /dev/fuse, so the connection is never
 *          aborted and the mount and every app on it hang (45-fs-wal-cache reproduced both).
 *          A child holds no /dev/fuse descriptor: the daemon's death aborts the connection,
 *          which fails the child's pending request, and PR_SET_PDEATHSIG ends the child.
 * Jobs:    'R' path: read the file's first MOUNTHELPER_READ_MAX bytes (fs/ops_file.c: makes
 *          the kernel's cache pages of a -wal up to date); 'G' (mounthelper_submit_range):
 *          read [from, to) (the range by which the daemon just extended a -wal); 'S'
 *          (mounthelper_submit_sync) path: sync_file_range(WRITE|WAIT) (fs/flusher.c). Paths
 *          are relative to the mount root. Queued jobs of one kind and path collapse into the
 *          newest; a read stops once the file is deleted, and syncs submitted before a
 *          mounthelper_cancel_syncs never start, so the child does not hold a database or
 *          its -wal open after the app is done.
 * Owns:    the child, the write end of its pipe and a page shared with the child holding its
 *          "inside a job" flag (an app's deletion of a -wal waits for it: fs/ops_entry.c).
 * Threads: mounthelper_submit is safe from any thread and never blocks: a job is one atomic
 *          write(2) to a non-blocking pipe, dropped when the pipe is full (every job is an
 *          optimisation or repeats every period) or when the path holds a newline.
 * Errors:  mounthelper_new returns NULL with err set. */
#ifndef BFS_FS_MOUNTHELPER_H
#define BFS_FS_MOUNTHELPER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

#define MOUNTHELPER_READ_MAX (16u << 20) /* a default WAL cycle is ~4 MiB */

struct mounthelper;

/* quiet: the child's stdin, stdout and stderr become /dev/null (a daemon that detaches:
 * otherwise the child would hold the caller's pipe, and out=$(bottomlessfs ...) would not
 * return until the unmount). */
struct mounthelper *mounthelper_new(const char *mountpoint, bool quiet, struct err *err);
/* Closes the pipe (the child exits when it has finished its job) and reaps the child, waiting
 * at most 2 s before SIGKILL. NULL: no-op. */
void mounthelper_free(struct mounthelper *mh);
/* kind 'R'. NULL mh: no-op. */
void mounthelper_submit(struct mounthelper *mh, char kind, const char *path);
/* Job 'S' of path, under epoch (mounthelper_epoch, read when the sync was decided on): the
 * child skips it if mounthelper_cancel_syncs was called since. NULL mh: no-op. */
void mounthelper_submit_sync(struct mounthelper *mh, const char *path, uint32_t epoch);
uint32_t mounthelper_epoch(const struct mounthelper *mh);
/* Syncs submitted before this never start (one already started is seen by mounthelper_busy,
 * so a caller that then waits for idle knows no file is held for them). NULL mh: no-op. */
void mounthelper_cancel_syncs(struct mounthelper *mh);
/* Job 'G': read [from, to) of path. NULL mh: no-op. */
void mounthelper_submit_range(struct mounthelper *mh, const char *path, uint64_t from,
                              uint64_t to);
/* The child's pid (its requests are the daemon's own), 0 for NULL. */
pid_t mounthelper_pid(const struct mounthelper *mh);
/* Whether the child is inside a job, so may hold a file of the mount open. False for NULL. */
bool mounthelper_busy(const struct mounthelper *mh);
/* Waits until the child is between jobs, at most timeout_ms; returns whether it is. Never on
 * the session thread: the child's job may be waiting for a request only that thread serves. */
bool mounthelper_wait_idle(const struct mounthelper *mh, unsigned timeout_ms);

#endif
