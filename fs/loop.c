/* fs/loop.c - session loop with request counters and a bounded spin (see fs/loop.h). Without a
 * spin the device fd stays blocking: the loop is libfuse's fuse_session_loop plus one counter
 * increment per request. With a spin the fd is switched to non-blocking; a read that finds
 * nothing is retried until the spin budget is spent, then the loop sleeps in poll(2).
 * libfuse's signal handlers (installed without SA_RESTART) interrupt the read or poll and set
 * the session's exit flag. */
#include "fs/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fuse.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"

/* FUSE opcode names (linux/fuse.h enum fuse_opcode), for the stats file. */
static const char *const loop_opcode_names[FS_LOOP_N_OPCODES] = {
    [FUSE_LOOKUP] = "LOOKUP",
    [FUSE_FORGET] = "FORGET",
    [FUSE_GETATTR] = "GETATTR",
    [FUSE_SETATTR] = "SETATTR",
    [FUSE_READLINK] = "READLINK",
    [FUSE_SYMLINK] = "SYMLINK",
    [FUSE_MKNOD] = "MKNOD",
    [FUSE_MKDIR] = "MKDIR",
    [FUSE_UNLINK] = "UNLINK",
    [FUSE_RMDIR] = "RMDIR",
    [FUSE_RENAME] = "RENAME",
    [FUSE_LINK] = "LINK",
    [FUSE_OPEN] = "OPEN",
    [FUSE_READ] = "READ",
    [FUSE_WRITE] = "WRITE",
    [FUSE_STATFS] = "STATFS",
    [FUSE_RELEASE] = "RELEASE",
    [FUSE_FSYNC] = "FSYNC",
    [FUSE_SETXATTR] = "SETXATTR",
    [FUSE_GETXATTR] = "GETXATTR",
    [FUSE_LISTXATTR] = "LISTXATTR",
    [FUSE_REMOVEXATTR] = "REMOVEXATTR",
    [FUSE_FLUSH] = "FLUSH",
    [FUSE_INIT] = "INIT",
    [FUSE_OPENDIR] = "OPENDIR",
    [FUSE_READDIR] = "READDIR",
    [FUSE_RELEASEDIR] = "RELEASEDIR",
    [FUSE_FSYNCDIR] = "FSYNCDIR",
    [FUSE_GETLK] = "GETLK",
    [FUSE_SETLK] = "SETLK",
    [FUSE_SETLKW] = "SETLKW",
    [FUSE_ACCESS] = "ACCESS",
    [FUSE_CREATE] = "CREATE",
    [FUSE_INTERRUPT] = "INTERRUPT",
    [FUSE_BMAP] = "BMAP",
    [FUSE_DESTROY] = "DESTROY",
    [FUSE_IOCTL] = "IOCTL",
    [FUSE_POLL] = "POLL",
    [FUSE_NOTIFY_REPLY] = "NOTIFY_REPLY",
    [FUSE_BATCH_FORGET] = "BATCH_FORGET",
    [FUSE_FALLOCATE] = "FALLOCATE",
    [FUSE_READDIRPLUS] = "READDIRPLUS",
    [FUSE_RENAME2] = "RENAME2",
    [FUSE_LSEEK] = "LSEEK",
    [FUSE_COPY_FILE_RANGE] = "COPY_FILE_RANGE",
    [FUSE_SETUPMAPPING] = "SETUPMAPPING",
    [FUSE_REMOVEMAPPING] = "REMOVEMAPPING",
    [FUSE_SYNCFS] = "SYNCFS",
    [FUSE_TMPFILE] = "TMPFILE",
};

static uint64_t loop_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void loop_bump(uint64_t *counter)
{
    /* Single writer (this thread): a relaxed load + store is enough and costs no lock. */
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

static void loop_count(struct fs_loop_stats *stats, const struct fuse_buf *fbuf)
{
    if (stats == NULL)
        return;
    loop_bump(&stats->requests);
    if ((fbuf->flags & FUSE_BUF_IS_FD) || fbuf->size < sizeof(struct fuse_in_header)) {
        loop_bump(&stats->other);
        return;
    }
    const struct fuse_in_header *h = fbuf->mem;
    if (h->opcode < FS_LOOP_N_OPCODES)
        loop_bump(&stats->by_opcode[h->opcode]);
    else
        loop_bump(&stats->other);
}

int fs_loop_run(struct fuse_session *se, unsigned spin_us, struct fs_loop_stats *stats)
{
    struct fuse_buf fbuf = {.mem = NULL};
    int fd = fuse_session_fd(se);
    int flags = fcntl(fd, F_GETFL);
    bool spin = spin_us != 0 && flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
    bool spinning = false;
    uint64_t spin_until = 0;
    int res = 0;

    while (!fuse_session_exited(se)) {
        res = fuse_session_receive_buf(se, &fbuf);
        if (res == -EINTR) {
            res = 0;
            continue;
        }
        if (res == -EAGAIN && spin) {
            res = 0; /* nothing read: not an error if the session exits now */
            uint64_t now = loop_now_ns();
            if (!spinning) {
                spinning = true;
                spin_until = now + (uint64_t)spin_us * 1000u;
            }
            if (now < spin_until)
                continue; /* spin: the next request is likely microseconds away */
            spinning = false;
            if (stats != NULL)
                loop_bump(&stats->sleeps);
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, -1) < 0 && errno != EINTR) {
                res = -errno;
                break;
            }
            continue;
        }
        if (res <= 0)
            break; /* 0: unmounted (ENODEV); < 0: device error */
        if (spinning && stats != NULL)
            loop_bump(&stats->spin_hits);
        spinning = false;
        loop_count(stats, &fbuf);
        fuse_session_process_buf(se, &fbuf);
        res = 0;
    }
    free(fbuf.mem);
    if (spin)
        fcntl(fd, F_SETFL, flags);
    fuse_session_reset(se);
    return res < 0 ? res : 0;
}

int fs_loop_stats_render(const struct fs_loop_stats *s, unsigned spin_us, struct buf *out)
{
    int rc = buf_appendf(out,
                         "{\"requests\":%" PRIu64 ",\"spin_us\":%u,\"spin_hits\":%" PRIu64
                         ",\"sleeps\":%" PRIu64 ",\"by_op\":{",
                         __atomic_load_n(&s->requests, __ATOMIC_RELAXED), spin_us,
                         __atomic_load_n(&s->spin_hits, __ATOMIC_RELAXED),
                         __atomic_load_n(&s->sleeps, __ATOMIC_RELAXED));
    const char *sep = "";

    for (unsigned op = 0; op < FS_LOOP_N_OPCODES && rc == 0; op++) {
        uint64_t n = __atomic_load_n(&s->by_opcode[op], __ATOMIC_RELAXED);
        if (n == 0)
            continue;
        if (loop_opcode_names[op] != NULL)
            rc = buf_appendf(out, "%s\"%s\":%" PRIu64, sep, loop_opcode_names[op], n);
        else
            rc = buf_appendf(out, "%s\"OP%u\":%" PRIu64, sep, op, n);
        sep = ",";
    }
    uint64_t other = __atomic_load_n(&s->other, __ATOMIC_RELAXED);
    if (rc == 0 && other != 0)
        rc = buf_appendf(out, "%s\"OTHER\":%" PRIu64, sep, other);
    if (rc == 0)
        rc = buf_appendf(out, "}}\n");
    return rc;
}
