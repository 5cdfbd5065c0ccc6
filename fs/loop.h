/* fs/loop.h - the single-threaded FUSE session loop, with per-opcode request counters and an
 * optional short spin: after each request the loop keeps polling /dev/fuse without sleeping for
 * spin_us microseconds before it blocks. On VMs without guest halt-polling, waking a sleeping
 * daemon on another vCPU costs 20-90 us per request; an app issuing back-to-back requests (WAL
 * frame header, then body) may send the next one within the spin window (issue 6,
 * fuse-performance.md 3.1). Measured in bench/ (README "Performance").
 * Owns:    nothing; the caller owns the stats (zeroed before the first run).
 * Threads: runs on the calling (main) thread until the session exits (unmount or signal). The
 *          counters are written by that thread only (relaxed atomics) and may be read from any
 *          thread; fs_loop_stats_render() is safe from any thread.
 * Errors:  fs_loop_run returns 0, or a negative errno from reading the device (like
 *          fuse_session_loop); fs_loop_stats_render returns 0 or ENOMEM/EMSGSIZE (buffer cap). */
#ifndef BFS_FS_LOOP_H
#define BFS_FS_LOOP_H

#include <fuse_lowlevel.h>
#include <stdint.h>

#include "common/buf.h"

#define FS_LOOP_N_OPCODES 64u /* FUSE opcodes below this are counted one by one */

struct fs_loop_stats {
    uint64_t by_opcode[FS_LOOP_N_OPCODES]; /* requests received, by FUSE opcode */
    uint64_t other;                        /* opcodes >= FS_LOOP_N_OPCODES (CUSE, future) */
    uint64_t requests;                     /* all requests */
    uint64_t spin_hits;                    /* requests found while spinning (a sleep avoided) */
    uint64_t sleeps;                       /* times the loop blocked in poll(2) (spin mode only) */
};

/* spin_us 0: blocking reads, no spin. stats may be NULL (no counting). */
int fs_loop_run(struct fuse_session *se, unsigned spin_us, struct fs_loop_stats *stats);
/* Appends {"requests":N,"spin_us":S,"spin_hits":N,"sleeps":N,"by_op":{"WRITE":N,...}}\n
 * (opcodes with a zero count are left out). */
int fs_loop_stats_render(const struct fs_loop_stats *s, unsigned spin_us, struct buf *out);

#endif
