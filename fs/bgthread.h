/* fs/bgthread.h - the life cycle of the daemon's helper threads that do I/O through the mount
 * (fs/flusher.c): start, ask to stop, wait a bounded time, then join.
 * Why bounded: such a thread can be blocked in a syscall on the mount after the session loop
 * stopped serving; it ends only when the connection is torn down, so joining would hang the
 * shutdown. bgthread_stop then leaves it running (and its owner must leak what it uses).
 * Owns:    the mutex, the condition variable (CLOCK_MONOTONIC) and the thread handle; the
 *          owner's own state may be guarded by mu too.
 * Threads: stopping and exited are guarded by mu. */
#ifndef BFS_FS_BGTHREAD_H
#define BFS_FS_BGTHREAD_H

#include <pthread.h>
#include <stdbool.h>

#include "common/err.h"

struct bgthread {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping; /* guarded by mu: the thread must leave its loop */
    bool exited;   /* guarded by mu: it did (bgthread_exiting) */
    bool started;
    pthread_t thread;
};

void bgthread_init(struct bgthread *t);
/* Starts fn(arg) named name (at most 15 characters). */
int bgthread_start(struct bgthread *t, const char *name, void *(*fn)(void *), void *arg,
                   struct err *err);
/* The thread calls this, mu held, as it leaves its loop. */
void bgthread_exiting(struct bgthread *t);
/* Sets stopping, wakes the thread, waits up to wait_ms for it to exit and joins it. Returns
 * false (after a warning naming what) when it is still busy: not joined, nothing it uses may
 * be freed. True also when it was never started. */
bool bgthread_stop(struct bgthread *t, unsigned wait_ms, const char *what);
/* After a successful bgthread_stop (or when never started). */
void bgthread_destroy(struct bgthread *t);

#endif
