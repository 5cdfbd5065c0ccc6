/* fs/cpulatency.c - the busy-time CPU latency request (see fs/cpulatency.h). The device takes
 * a binary s32 per write(2) and keeps the last value until the file is closed. */
#include "fs/cpulatency.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/bgthread.h"

#define CPULAT_STOP_WAIT_MS 2000

struct cpulat {
    int fd;
    const uint64_t *requests; /* borrowed */
    uint32_t min_rate;        /* requests per second that count as busy */
    struct bgthread t;
    uint64_t holds; /* written by the sampler, read with relaxed atomics */
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool cpulat_set(struct cpulat *c, int32_t us)
{
    if (write(c->fd, &us, sizeof(us)) == (ssize_t)sizeof(us))
        return true;
    LOG_WARN("cpulatency: writing %s failed err=%s: running without the request", CPULAT_DEVICE,
             errno_name(errno));
    return false;
}

static void *cpulat_main(void *arg)
{
    struct cpulat *c = arg;
    uint64_t last = __atomic_load_n(c->requests, __ATOMIC_RELAXED);
    uint64_t last_ns = mono_ns();
    bool held = false, usable = true;
    unsigned quiet = 0, busy_run = 0;

    pthread_mutex_lock(&c->t.mu);
    while (!c->t.stopping && usable) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)CPULAT_WINDOW_MS * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        while (!c->t.stopping && pthread_cond_timedwait(&c->t.cv, &c->t.mu, &ts) != ETIMEDOUT) {
        }
        if (c->t.stopping)
            break;
        /* the rate over the time that really passed: a sampler that was not scheduled for a
         * while must not see the requests of many windows as one busy window */
        uint64_t now = __atomic_load_n(c->requests, __ATOMIC_RELAXED), now_ns = mono_ns();
        uint64_t elapsed_ns = now_ns > last_ns ? now_ns - last_ns : 1;
        bool busy = (now - last) * 1000000000u >= (uint64_t)c->min_rate * elapsed_ns;
        last = now;
        last_ns = now_ns;
        busy_run = busy ? busy_run + 1 : 0;
        if (busy_run >= CPULAT_BUSY_WINDOWS && !held) {
            usable = cpulat_set(c, 0);
            held = usable;
            if (held) {
                __atomic_store_n(&c->holds, c->holds + 1, __ATOMIC_RELAXED);
                LOG_DEBUG("cpulatency: busy, holding idle CPUs polling");
            }
        }
        quiet = busy ? 0 : quiet + 1;
        if (held && quiet >= CPULAT_QUIET_WINDOWS) {
            usable = cpulat_set(c, CPULAT_NO_CONSTRAINT);
            held = false;
            LOG_DEBUG("cpulatency: quiet, request dropped");
        }
    }
    if (held)
        cpulat_set(c, CPULAT_NO_CONSTRAINT);
    bgthread_exiting(&c->t);
    pthread_mutex_unlock(&c->t.mu);
    return NULL;
}

struct cpulat *cpulat_new(const char *device, const uint64_t *requests, uint32_t min_rate,
                          struct err *err)
{
    struct cpulat *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        ERR(err, ENOMEM, "cpulatency: out of memory");
        return NULL;
    }
    c->requests = requests;
    c->min_rate = min_rate != 0 ? min_rate : 1;
    bgthread_init(&c->t);
    c->fd = open(device, O_WRONLY | O_CLOEXEC);
    if (c->fd < 0) {
        ERR(err, errno, "cannot open %s: %s", device, errno_name(errno));
        cpulat_free(c);
        return NULL;
    }
    int32_t none = CPULAT_NO_CONSTRAINT; /* proves now that the device takes our writes */
    if (write(c->fd, &none, sizeof(none)) != (ssize_t)sizeof(none)) {
        ERR(err, errno, "cannot write %s: %s", device, errno_name(errno));
        cpulat_free(c);
        return NULL;
    }
    if (bgthread_start(&c->t, "bfs-cpulat", cpulat_main, c, err) != 0) {
        cpulat_free(c);
        return NULL;
    }
    return c;
}

void cpulat_free(struct cpulat *c)
{
    if (c == NULL || !bgthread_stop(&c->t, CPULAT_STOP_WAIT_MS, "cpu latency sampler"))
        return; /* never blocks on I/O of the mount; kept for symmetry with fs/bgthread.h */
    if (c->fd >= 0)
        close(c->fd);
    bgthread_destroy(&c->t);
    free(c);
}

uint64_t cpulat_holds(const struct cpulat *c)
{
    return c != NULL ? __atomic_load_n(&c->holds, __ATOMIC_RELAXED) : 0;
}
