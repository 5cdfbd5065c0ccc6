/* fs/mounthelper.c - the child process that does the daemon's I/O on its own mount (see
 * fs/mounthelper.h). The child is forked from a multi-threaded process: it calls only
 * async-signal-safe functions (no malloc, no locks, no logging) and _exit()s. */
#include "fs/mounthelper.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fileio.h"
#include "common/log.h"

#define MH_LINE_MAX 4096 /* < PIPE_BUF: one write(2) is atomic */
#define MH_CHUNK (128u << 10)
#define MH_PENDING_MAX 16 /* distinct jobs taken in before the child runs them */

/* The page shared with the child. busy: the child is inside a job (it may hold a file of the
 * mount). epoch: bumped by mounthelper_cancel_syncs; a sync job carries the epoch it was
 * submitted under, and the child drops it once the epoch has moved on. The child stores busy
 * before it loads epoch, the daemon bumps epoch before it loads busy (both sequentially
 * consistent): so after a cancel either the child was seen busy, or it sees the new epoch. */
struct mh_shared {
    uint32_t busy;
    uint32_t epoch;
};

struct mounthelper {
    pid_t pid;
    int wfd; /* write end, non-blocking */
    struct mh_shared *sh;
};

/* Hex digits at *p up to a space -> *out; advances *p past the space. */
static bool mh_parse_hex(const char **p, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    const char *q = *p;
    while (q < end && *q != ' ') {
        int d = *q >= '0' && *q <= '9' ? *q - '0' : *q >= 'a' && *q <= 'f' ? *q - 'a' + 10 : -1;
        if (d < 0 || v >> 60 != 0)
            return false;
        v = v << 4 | (uint64_t)d;
        q++;
    }
    if (q == *p || q == end)
        return false;
    *p = q + 1;
    *out = v;
    return true;
}

static void mh_job(struct mh_shared *sh, char kind, const char *full, uint64_t from, uint64_t to,
                   char *data)
{
    uint32_t *busy = &sh->busy;
    /* set before the open: an unlink's reply waits for it to clear (mounthelper_wait_idle) */
    __atomic_store_n(busy, 1, __ATOMIC_SEQ_CST);
    if (kind == 'S' && (uint32_t)from != __atomic_load_n(&sh->epoch, __ATOMIC_SEQ_CST)) {
        __atomic_store_n(busy, 0, __ATOMIC_SEQ_CST);
        return; /* cancelled since it was submitted */
    }
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        __atomic_store_n(busy, 0, __ATOMIC_SEQ_CST);
        return; /* gone since: nothing to do */
    }
    if (kind == 'S') {
        sync_file_range(fd, 0, 0,
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER);
    } else {
        for (off_t off = (off_t)from; off < (off_t)to; off += MH_CHUNK) {
            struct statx sx; /* only the link count: cached, no GETATTR while the app writes */
            if (statx(fd, "", AT_EMPTY_PATH, STATX_NLINK, &sx) != 0 || sx.stx_nlink == 0)
                break; /* the app closed the database (SQLite deleted the -wal): let go now */
            ssize_t got = pread(fd, data, MH_CHUNK, off);
            if (got < (ssize_t)MH_CHUNK && !(got < 0 && errno == EINTR))
                break;
        }
    }
    close(fd);
    __atomic_store_n(busy, 0, __ATOMIC_SEQ_CST);
}

/* Jobs waiting to run, one per kind and path: a burst of writes queues many jobs for the same
 * -wal (one per MiB it grows), and by the time the child gets to them only the newest is worth
 * running. Running stale ones kept the -wal open through the mount long after the app was
 * done, and fusermount3 -u failed with EBUSY meanwhile. */
struct mh_pending {
    char kind;
    uint64_t from, to;
    char path[MH_LINE_MAX];
};

static void mh_enqueue(struct mh_pending *q, size_t *n, char kind, uint64_t from, uint64_t to,
                       const char *path, size_t len)
{
    size_t i = 0;
    while (i < *n && !(q[i].kind == kind && strlen(q[i].path) == len &&
                       memcmp(q[i].path, path, len) == 0))
        i++;
    if (i == *n) {
        if (*n == MH_PENDING_MAX)
            return; /* every job is an optimisation or repeats: dropping one is safe */
        (*n)++;
        memcpy(q[i].path, path, len);
        q[i].path[len] = '\0';
        q[i].kind = kind;
    }
    q[i].from = from;
    q[i].to = to;
}

static void mh_child(int rfd, pid_t parent, const char *mountpoint, struct mh_shared *sh,
                     char *data, bool quiet)
{
    char line[MH_LINE_MAX + 1], full[MH_LINE_MAX + 512];
    struct mh_pending q[MH_PENDING_MAX];
    size_t fill = 0, mlen = strlen(mountpoint), nq = 0;
    bool skipping = false;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    /* Above all /dev/fuse: holding it would keep the connection alive after the daemon died. */
    if (rfd > 3)
        close_range(3, (unsigned)rfd - 1, 0);
    close_range((unsigned)rfd + 1, ~0u, 0);
    if (quiet)
        fileio_stdio_to_null();
    if (mlen + 1 >= sizeof(full) - MH_LINE_MAX)
        _exit(0);
    memcpy(full, mountpoint, mlen);
    full[mlen] = '/';
    for (;;) {
        ssize_t n = read(rfd, line + fill, MH_LINE_MAX - fill);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(0); /* the daemon closed the pipe (or died) */
        fill += (size_t)n;
        size_t start = 0;
        for (;;) {
            char *nl = memchr(line + start, '\n', fill - start);
            if (nl == NULL)
                break;
            size_t len = (size_t)(nl - (line + start));
            if (!skipping && len > 2 && line[start + 1] == ' ') {
                char kind = line[start];
                const char *arg = line + start + 2, *end = line + start + len;
                uint64_t from = 0, to = MOUNTHELPER_READ_MAX;
                bool ok = true;
                if (kind == 'G')
                    ok =
                        mh_parse_hex(&arg, end, &from) && mh_parse_hex(&arg, end, &to) && arg < end;
                else if (kind == 'S') /* from: the epoch the sync was submitted under */
                    ok = mh_parse_hex(&arg, end, &from) && arg < end;
                if (ok)
                    mh_enqueue(q, &nq, kind, from, to, arg, (size_t)(end - arg));
            }
            skipping = false;
            start += len + 1;
        }
        memmove(line, line + start, fill - start);
        fill -= start;
        if (fill == MH_LINE_MAX) { /* a line longer than any job: drop it up to its newline */
            fill = 0;
            skipping = true;
        }
        struct pollfd more = {.fd = rfd, .events = POLLIN};
        if (poll(&more, 1, 0) > 0)
            continue; /* take in everything queued before running any of it */
        for (size_t i = 0; i < nq; i++) {
            size_t plen = strlen(q[i].path);
            memcpy(full + mlen + 1, q[i].path, plen + 1);
            mh_job(sh, q[i].kind, full, q[i].from, q[i].to, data);
        }
        nq = 0;
    }
}

struct mounthelper *mounthelper_new(const char *mountpoint, bool quiet, struct err *err)
{
    struct mounthelper *mh = calloc(1, sizeof(*mh));
    char *data = malloc(MH_CHUNK);
    int p[2];

    if (mh == NULL || data == NULL) {
        free(mh);
        free(data);
        ERR(err, ENOMEM, "mount helper: out of memory");
        return NULL;
    }
    void *page =
        mmap(NULL, sizeof(*mh->sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        ERR(err, errno, "mount helper: mmap: %s", errno_name(errno));
        free(mh);
        free(data);
        return NULL;
    }
    mh->sh = page;
    if (pipe2(p, O_CLOEXEC) != 0) {
        ERR(err, errno, "mount helper: pipe: %s", errno_name(errno));
        munmap(mh->sh, sizeof(*mh->sh));
        free(mh);
        free(data);
        return NULL;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        ERR(err, errno, "mount helper: fork: %s", errno_name(errno));
        close(p[0]);
        close(p[1]);
        munmap(mh->sh, sizeof(*mh->sh));
        free(mh);
        free(data);
        return NULL;
    }
    if (pid == 0)
        mh_child(p[0], parent, mountpoint, mh->sh, data, quiet); /* never returns */
    close(p[0]);
    free(data);
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    mh->pid = pid;
    mh->wfd = p[1];
    return mh;
}

void mounthelper_free(struct mounthelper *mh)
{
    if (mh == NULL)
        return;
    close(mh->wfd);
    for (int i = 0; i < 200; i++) {
        pid_t r = waitpid(mh->pid, NULL, WNOHANG);
        if (r == mh->pid || (r < 0 && errno != EINTR))
            break;
        if (i == 199) {
            /* Blocked on the mount: killable waits end now, an uninterruptible one when the
             * connection goes away; either way the daemon does not wait for it. */
            LOG_WARN("mount helper: child pid=%ld still busy at shutdown, killed", (long)mh->pid);
            kill(mh->pid, SIGKILL);
            waitpid(mh->pid, NULL, WNOHANG);
            break;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    munmap(mh->sh, sizeof(*mh->sh));
    free(mh);
}

static void mh_submit_line(struct mounthelper *mh, const char *head, size_t hlen, const char *path)
{
    char line[MH_LINE_MAX];

    if (mh == NULL)
        return;
    size_t len = strlen(path);
    if (hlen + len + 1 > sizeof(line) || memchr(path, '\n', len) != NULL)
        return;
    memcpy(line, head, hlen);
    memcpy(line + hlen, path, len);
    line[hlen + len] = '\n';
    ssize_t n;
    do {
        n = write(mh->wfd, line, hlen + len + 1);
    } while (n < 0 && errno == EINTR);
    /* EAGAIN (pipe full: the child is busy) or EPIPE (it died): the job is dropped */
}

void mounthelper_submit(struct mounthelper *mh, char kind, const char *path)
{
    char head[2] = {kind, ' '};
    mh_submit_line(mh, head, sizeof(head), path);
}

void mounthelper_submit_sync(struct mounthelper *mh, const char *path, uint32_t epoch)
{
    char head[16];
    int n = snprintf(head, sizeof(head), "S %" PRIx32 " ", epoch);
    if (n > 0 && (size_t)n < sizeof(head))
        mh_submit_line(mh, head, (size_t)n, path);
}

uint32_t mounthelper_epoch(const struct mounthelper *mh)
{
    return mh != NULL ? __atomic_load_n(&mh->sh->epoch, __ATOMIC_SEQ_CST) : 0;
}

void mounthelper_cancel_syncs(struct mounthelper *mh)
{
    if (mh != NULL)
        __atomic_add_fetch(&mh->sh->epoch, 1, __ATOMIC_SEQ_CST);
}

void mounthelper_submit_range(struct mounthelper *mh, const char *path, uint64_t from,
                              uint64_t to)
{
    char head[48];
    int n = snprintf(head, sizeof(head), "G %" PRIx64 " %" PRIx64 " ", from, to);
    if (n > 0 && (size_t)n < sizeof(head))
        mh_submit_line(mh, head, (size_t)n, path);
}

pid_t mounthelper_pid(const struct mounthelper *mh)
{
    return mh != NULL ? mh->pid : 0;
}

bool mounthelper_busy(const struct mounthelper *mh)
{
    if (mh == NULL || __atomic_load_n(&mh->sh->busy, __ATOMIC_SEQ_CST) == 0)
        return false;
    /* a child that died inside a job (killed from outside) left the flag set: it holds
     * nothing now. WNOWAIT: mounthelper_free still reaps it. */
    siginfo_t si = {0};
    return !(waitid(P_PID, (id_t)mh->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
             si.si_pid == mh->pid);
}

bool mounthelper_wait_idle(const struct mounthelper *mh, unsigned timeout_ms)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    while (mounthelper_busy(mh)) {
        if (clock_mono_ms() >= deadline)
            return false;
        struct timespec ts = {0, 200 * 1000};
        nanosleep(&ts, NULL);
    }
    return true;
}
