/* fs/cpulatency.h - while the mount is busy, hold a CPU latency request of 0 us on
 * /dev/cpu_dma_latency (the kernel's PM QoS device), so idle CPUs poll instead of halting.
 * Why:     every FUSE request costs two wake-ups across CPUs (the app wakes the daemon, the
 *          reply wakes the app). On a VM without guest halt-polling a halted vCPU takes 20-90 us
 *          to wake, several times the request's own cost: bulk loads ran at 0.14 of native
 *          instead of 0.36 (README "Performance"). A spin in the daemon keeps only its own CPU
 *          awake; the request keeps the app's too, and costs nothing while the load is low.
 * When:    a sampler thread reads the session loop's request counter every CPULAT_WINDOW_MS. It
 *          takes the request after CPULAT_BUSY_WINDOWS windows in a row with at least min_rate
 *          requests per second (measured over the time that really passed) and drops it
 *          (writes the kernel's "no constraint" value) after CPULAT_QUIET_WINDOWS windows below
 *          that rate. An app doing a few hundred requests a second never takes it, nor does
 *          the burst of ~100 requests in which an app opens a database and sets up its WAL
 *          (one window: a fresh-clone CI run saw it); the price while held is idle CPUs
 *          polling rather than sleeping.
 * Owns:    its thread and the device's file descriptor (closing it also drops the request).
 * Threads: cpulat_new and cpulat_free from one thread; the counter is written by another thread
 *          and read here with relaxed atomic loads; cpulat_holds is safe from any thread.
 * Errors:  cpulat_new returns NULL with err set when the device cannot be opened (not root, no
 *          such device) or the thread cannot start; the caller logs it and runs without. */
#ifndef BFS_FS_CPULATENCY_H
#define BFS_FS_CPULATENCY_H

#include <stdint.h>

#include "common/err.h"

#define CPULAT_DEVICE "/dev/cpu_dma_latency"
#define CPULAT_WINDOW_MS 50u
#define CPULAT_BUSY_WINDOWS 2u
#define CPULAT_QUIET_WINDOWS 4u
#define CPULAT_DEFAULT_MIN_RATE 2000u /* requests per second */
#define CPULAT_NO_CONSTRAINT 2000000000 /* the kernel's default: any idle state */

struct cpulat;

/* device: CPULAT_DEVICE (tests pass a regular file and read back the values written).
 * requests: a counter that outlives the cpulat. */
struct cpulat *cpulat_new(const char *device, const uint64_t *requests, uint32_t min_rate,
                          struct err *err);
/* Stops the sampler, drops the request, frees. NULL is a no-op. */
void cpulat_free(struct cpulat *c);
/* How many times the request was taken so far. */
uint64_t cpulat_holds(const struct cpulat *c);

#endif
