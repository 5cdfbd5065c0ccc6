/* fs/loop.c - session loop with a bounded spin (see fs/loop.h). The device fd is switched to
 * non-blocking; a read that finds nothing is retried until the spin budget is spent, then the
 * loop sleeps in poll(2). libfuse's signal handlers (installed without SA_RESTART) interrupt
 * the poll and set the session's exit flag. */
#include "fs/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"

static uint64_t loop_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int fs_loop_run(struct fuse_session *se, unsigned spin_us)
{
    struct fuse_buf fbuf = {.mem = NULL};
    int fd = fuse_session_fd(se);
    int flags = fcntl(fd, F_GETFL);
    int res = 0;
    uint64_t spin_until = 0;

    if (spin_us == 0 || flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
        return fuse_session_loop(se);
    while (!fuse_session_exited(se)) {
        res = fuse_session_receive_buf(se, &fbuf);
        if (res == -EINTR) {
            res = 0;
            continue;
        }
        if (res == -EAGAIN) {
            res = 0; /* nothing read: not an error if the session exits now */
            uint64_t now = loop_now_ns();
            if (spin_until == 0)
                spin_until = now + (uint64_t)spin_us * 1000u;
            if (now < spin_until)
                continue; /* spin: the next request is likely microseconds away */
            spin_until = 0;
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, -1) < 0 && errno != EINTR) {
                res = -errno;
                break;
            }
            continue;
        }
        spin_until = 0;
        if (res <= 0)
            break; /* 0: unmounted (ENODEV); < 0: device error */
        fuse_session_process_buf(se, &fbuf);
        res = 0;
    }
    free(fbuf.mem);
    fcntl(fd, F_SETFL, flags);
    fuse_session_reset(se);
    return res < 0 ? res : 0;
}
