/* fs/stagelock.h - one daemon per staging area (BACKING_DIR/.bottomless).
 * Why:     two daemons on one BACKING_DIR (mounted twice, or a new mount while the previous
 *          daemon still uploads after its unmount) would decode, stage and upload the same
 *          databases twice into one staging area and one bucket history.
 * How:     an exclusive flock(2) on <staging>/lock, held by an fd the daemon keeps open for
 *          its whole life (it survives the daemonising fork; the kernel drops it when the
 *          process dies, kill -9 included). The file also holds a one-line note - pid, state
 *          (serving | flushing | exited | exited-unflushed) and mountpoint - so that a second
 *          daemon can say who holds it and wait for a predecessor that is only finishing its
 *          unmount's uploads, and bottomlessfs -u can wait for those uploads and tell how
 *          they ended.
 *          A filesystem without flock (ENOLCK, EOPNOTSUPP) gets a warning and no guard.
 * Owns:    the returned fd (the caller closes it at exit, or lets the process end).
 * Threads: call from the main thread only.
 * Errors:  0 / fd >= 0, or a positive errno with *err. */
#ifndef BFS_FS_STAGELOCK_H
#define BFS_FS_STAGELOCK_H

#include <stdint.h>

#include "common/err.h"

/* Takes the lock of staging_dir (which must exist). Held by a daemon in state "flushing": waits
 * up to wait_ms for it (one log line), then fails with ETIMEDOUT. Held by one that is serving a
 * mount: fails at once with EBUSY naming its pid and mountpoint. Returns the fd, or -1. */
int stagelock_take(const char *staging_dir, uint32_t wait_ms, struct err *err);
enum stagelock_state {
    STAGELOCK_SERVING,  /* a mount is up: a second daemon fails */
    STAGELOCK_FLUSHING, /* unmounted, uploading what is left: a second daemon waits */
    STAGELOCK_EXITED,   /* written just before the lock goes: everything reached S3 */
    STAGELOCK_EXITED_UNFLUSHED, /* the same, with uploads left staged for the next mount */
};
/* Records this process as the holder, in state, serving mountpoint. */
void stagelock_note(int fd, enum stagelock_state state, const char *mountpoint);

/* The other side, for bottomlessfs -u (fs/unmount.c): what the holder's note says. */
struct stagelock_holder {
    long pid;  /* 0: not known (no note yet, or torn) */
    int state; /* an enum stagelock_state, or -1: not known */
    char mountpoint[4096];
};
/* Opens staging_dir's lock file without locking it and reads its note into h. Returns the
 * fd (the caller closes it), or -1 with err (ENOENT: no daemon ever replicated there). */
int stagelock_open_note(const char *staging_dir, struct stagelock_holder *h, struct err *err);
/* Waits, polling, until no process holds the lock behind fd (its daemon has ended, however;
 * on a filesystem without flock: until process pid is gone), then reads the note it left
 * into h. 0, or ETIMEDOUT after timeout_ms (STAGELOCK_FOREVER: no limit). */
#define STAGELOCK_FOREVER UINT32_MAX
int stagelock_wait_free(int fd, long pid, struct stagelock_holder *h, uint32_t timeout_ms);

#endif
