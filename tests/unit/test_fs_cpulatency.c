/* tests/unit/test_fs_cpulatency.c - the busy-time CPU latency request: taken when the request
 * counter moves fast, dropped after quiet windows, never taken at a low rate, dropped at free.
 * A regular file stands in for /dev/cpu_dma_latency: each write(2) appends one s32. */
#include "../../fs/bgthread.c" /* fs/ objects are not in a library */
#include "../../fs/cpulatency.c"
#include "common/clock.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static char dev_path[64];

static void make_dev(void)
{
    snprintf(dev_path, sizeof(dev_path), "/tmp/bfs-cpulat-%d", (int)getpid());
    int fd = open(dev_path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    cr_assert_geq(fd, 0);
    close(fd);
}

/* The values written so far; returns how many. */
static size_t dev_values(int32_t *out, size_t cap)
{
    FILE *f = fopen(dev_path, "rb");
    cr_assert_not_null(f);
    size_t n = fread(out, sizeof(*out), cap, f);
    fclose(f);
    return n;
}

static int32_t dev_last(void)
{
    int32_t v[4096];
    size_t n = dev_values(v, 4096);
    return n ? v[n - 1] : -1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Bumps *counter by per_ms every millisecond until last(dev) == want or the deadline. */
static bool drive_until(uint64_t *counter, uint64_t per_ms, int32_t want, int64_t deadline_ms)
{
    while (clock_mono_ms() < deadline_ms) {
        __atomic_add_fetch(counter, per_ms, __ATOMIC_RELAXED);
        if (dev_last() == want)
            return true;
        sleep_ms(1);
    }
    return false;
}

/* A sampler at 2,000 requests/s on a fresh stand-in device, reading *requests. */
static struct cpulat *sampler_start(uint64_t *requests)
{
    struct err e = {0};
    make_dev();
    struct cpulat *c = cpulat_new(dev_path, requests, 2000, &e);
    cr_assert_not_null(c, "%s", e.msg);
    return c;
}

/* Frees c and checks that it never wrote anything but its opening "no constraint". */
static void sampler_free_untouched(struct cpulat *c)
{
    cpulat_free(c);
    int32_t v[16];
    cr_expect_eq(dev_values(v, 16), 1, "only the opening write");
    unlink(dev_path);
}

Test(cpulatency, held_under_load_and_dropped_when_quiet)
{
    uint64_t requests = 0;
    struct cpulat *c = sampler_start(&requests);
    cr_expect_eq(dev_last(), CPULAT_NO_CONSTRAINT, "opens with no constraint");
    /* 10 requests per ms = 10,000/s: taken */
    cr_assert(drive_until(&requests, 10, 0, clock_mono_ms() + 5000), "not taken under load");
    cr_expect_eq(cpulat_holds(c), 1);
    /* no requests: dropped after the quiet windows, not before one window has passed */
    int64_t t0 = clock_mono_ms();
    cr_assert(drive_until(&requests, 0, CPULAT_NO_CONSTRAINT, t0 + 5000), "not dropped");
    cr_expect_geq(clock_mono_ms() - t0, (int64_t)CPULAT_WINDOW_MS, "dropped too early");
    /* load again: taken again */
    cr_assert(drive_until(&requests, 10, 0, clock_mono_ms() + 5000), "not taken again");
    cr_expect_eq(cpulat_holds(c), 2);
    cpulat_free(c);
    cr_expect_eq(dev_last(), CPULAT_NO_CONSTRAINT, "free drops the request");
    unlink(dev_path);
}

Test(cpulatency, never_taken_at_a_low_rate)
{
    uint64_t requests = 0;
    struct cpulat *c = sampler_start(&requests);
    /* one request per ms = 1,000/s, half the threshold, for 10 windows */
    cr_expect_not(drive_until(&requests, 1, 0, clock_mono_ms() + 10 * CPULAT_WINDOW_MS));
    cr_expect_eq(cpulat_holds(c), 0);
    sampler_free_untouched(c);
}

Test(cpulatency, a_single_burst_is_not_load)
{
    uint64_t requests = 0;
    struct cpulat *c = sampler_start(&requests);
    /* an app opening a database sends ~100 requests at once; here 300 (3 windows' worth), then
     * nothing; sampled for 10 windows. The sampler must be running before the burst. */
    sleep_ms(2 * CPULAT_WINDOW_MS);
    __atomic_add_fetch(&requests, 300, __ATOMIC_RELAXED);
    cr_expect_not(drive_until(&requests, 0, 0, clock_mono_ms() + 10 * CPULAT_WINDOW_MS));
    cr_expect_eq(cpulat_holds(c), 0, "a burst within one window took the request");
    sampler_free_untouched(c);
}

Test(cpulatency, missing_device_is_an_error_naming_it)
{
    uint64_t requests = 0;
    struct err e = {0};
    cr_expect_null(cpulat_new("/nonexistent/cpu_dma_latency", &requests, 2000, &e));
    cr_expect_eq(e.code, ENOENT);
    cr_expect(strstr(e.msg, "/nonexistent/cpu_dma_latency") != NULL, "%s", e.msg);
}
