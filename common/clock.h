/* common/clock.h - the monotonic clock in milliseconds, for timeouts and rate limits.
 * Owns:    nothing. Threads: safe. Errors: none (CLOCK_MONOTONIC cannot fail on Linux). */
#ifndef BFS_COMMON_CLOCK_H
#define BFS_COMMON_CLOCK_H

#include <stdint.h>

/* Milliseconds since an arbitrary fixed point; never goes back (unlike the wall clock). */
int64_t clock_mono_ms(void);

#endif
