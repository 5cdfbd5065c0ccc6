/* fs/loop.h - the single-threaded FUSE session loop, with an optional short spin: after each
 * request the loop keeps polling /dev/fuse without sleeping for spin_us microseconds before it
 * blocks. On VMs without guest halt-polling, waking a sleeping daemon on another vCPU costs
 * 20-90 us per request; an app issuing back-to-back requests (WAL frame header, then body)
 * usually sends the next one within the spin window (issue 6, fuse-performance.md 3.1).
 * Threads: runs on the calling (main) thread until the session exits (unmount or signal).
 * Errors:  0, or a negative errno from reading the device (like fuse_session_loop). */
#ifndef BFS_FS_LOOP_H
#define BFS_FS_LOOP_H

#include <fuse_lowlevel.h>

/* spin_us 0: plain fuse_session_loop. */
int fs_loop_run(struct fuse_session *se, unsigned spin_us);

#endif
