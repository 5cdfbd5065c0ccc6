/* fs/stagelock.c - one daemon per staging area: see stagelock.h. */
#include "fs/stagelock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/fileio.h"
#include "common/log.h"

#define STAGELOCK_NAME "lock"
#define STAGELOCK_POLL_MS 100

static const char *const STATE_NAMES[] = {
    [STAGELOCK_SERVING] = "serving",
    [STAGELOCK_FLUSHING] = "flushing",
    [STAGELOCK_EXITED] = "exited",
    [STAGELOCK_EXITED_UNFLUSHED] = "exited-unflushed",
};

static int state_of(const char *name)
{
    for (size_t i = 0; i < sizeof(STATE_NAMES) / sizeof(STATE_NAMES[0]); i++)
        if (strcmp(name, STATE_NAMES[i]) == 0)
            return (int)i;
    return -1;
}

/* The holder's note "pid=N state=S mountpoint=M\n" into h; pid 0 and state -1 when it is
 * unreadable, torn or not written yet. */
static void holder_read(int fd, struct stagelock_holder *h)
{
    char buf[4200], state[24];
    size_t got = 0;

    memset(h, 0, sizeof(*h));
    h->state = -1;
    if (fileio_pread_full(fd, buf, sizeof(buf) - 1, 0, &got) != 0)
        return;
    buf[got] = '\0';
    char *nl = strchr(buf, '\n');
    if (nl == NULL) /* torn or not written yet */
        return;
    *nl = '\0';
    if (sscanf(buf, "pid=%ld state=%23s", &h->pid, state) != 2 || h->pid <= 0) {
        h->pid = 0;
        return;
    }
    h->state = state_of(state);
    const char *m = strstr(buf, " mountpoint=");
    if (m != NULL)
        snprintf(h->mountpoint, sizeof(h->mountpoint), "%s", m + strlen(" mountpoint="));
}

static int lock_path(const char *staging_dir, char *out, size_t cap, struct err *err)
{
    int n = snprintf(out, cap, "%s/%s", staging_dir, STAGELOCK_NAME);
    if (n < 0 || (size_t)n >= cap)
        return ERR(err, ENAMETOOLONG, "staging directory path too long: %s", staging_dir);
    return 0;
}

static void poll_pause(void)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = STAGELOCK_POLL_MS * 1000000L};
    nanosleep(&ts, NULL);
}

static int held_error(const char *staging_dir, const struct stagelock_holder *h,
                      struct err *err)
{
    if (h->pid == 0)
        return ERR(err, EBUSY,
                   "staging area %s is in use by another bottomlessfs that is starting: one "
                   "daemon per BACKING_DIR (two would replicate the same databases twice)",
                   staging_dir);
    return ERR(err, EBUSY,
               "BACKING_DIR is already served by bottomlessfs pid %ld at %s (staging area %s): "
               "one daemon per BACKING_DIR (two would replicate the same databases twice); "
               "unmount it first (fusermount3 -u %s)",
               h->pid, h->mountpoint[0] ? h->mountpoint : "?", staging_dir,
               h->mountpoint[0] ? h->mountpoint : "MOUNTPOINT");
}

int stagelock_take(const char *staging_dir, uint32_t wait_ms, struct err *err)
{
    char path[4200];

    if (lock_path(staging_dir, path, sizeof(path), err) != 0)
        return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        ERR(err, errno, "cannot open the lock of the staging area %s: %s", path,
            errno_name(errno));
        return -1;
    }
    int64_t deadline = clock_mono_ms() + wait_ms;
    bool told = false;
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return fd;
        if (errno == EINTR)
            continue;
        if (errno == ENOLCK || errno == EOPNOTSUPP || errno == EINVAL) {
            /* a backing filesystem without flock: serve unguarded rather than not at all */
            LOG_WARN("main: cannot lock %s (errno=%s): a second daemon on this BACKING_DIR "
                     "would not be refused",
                     path, errno_name(errno));
            return fd;
        }
        if (errno != EWOULDBLOCK) {
            ERR(err, errno, "cannot lock %s: %s", path, errno_name(errno));
            break;
        }
        struct stagelock_holder h;
        holder_read(fd, &h);
        if (h.state < 0 || h.state == STAGELOCK_SERVING) { /* only an unmounted one is waited for */
            held_error(staging_dir, &h, err);
            break;
        }
        if (clock_mono_ms() >= deadline) {
            ERR(err, ETIMEDOUT,
                "the previous bottomlessfs (pid %ld) is still uploading after its unmount "
                "(waited %u s): wait until it exits, or stop it (kill %ld; what it has not "
                "uploaded stays staged for the next mount)",
                h.pid, (unsigned)(wait_ms / 1000), h.pid);
            break;
        }
        if (!told) {
            LOG_INFO("main: waiting up to %u s for bottomlessfs pid %ld to finish the uploads "
                     "of its unmount (it holds %s)",
                     (unsigned)(wait_ms / 1000), h.pid, path);
            told = true;
        }
        poll_pause();
    }
    close(fd);
    return -1;
}

void stagelock_note(int fd, enum stagelock_state state, const char *mountpoint)
{
    char note[4200];
    int n = snprintf(note, sizeof(note), "pid=%ld state=%s mountpoint=%s\n", (long)getpid(),
                     STATE_NAMES[state], mountpoint);

    if (fd < 0 || n < 0 || (size_t)n >= sizeof(note))
        return;
    /* Only a hint for a second daemon's message: no fsync. Written over in place and then cut,
     * so a reader sees the old note, the new one, or a torn line (no newline: "starting"). */
    if (fileio_pwrite_all(fd, note, (size_t)n, 0) != 0 || ftruncate(fd, n) != 0)
        LOG_WARN("main: cannot write the staging lock note errno=%s", errno_name(errno));
}

int stagelock_open_note(const char *staging_dir, struct stagelock_holder *h, struct err *err)
{
    char path[4200];

    memset(h, 0, sizeof(*h));
    h->state = -1;
    if (lock_path(staging_dir, path, sizeof(path), err) != 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        ERR(err, errno, "cannot open %s: %s", path, errno_name(errno));
        return -1;
    }
    holder_read(fd, h);
    return fd;
}

static bool pid_alive(long pid)
{
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

int stagelock_wait_free(int fd, long pid, struct stagelock_holder *h, uint32_t timeout_ms)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    for (;;) {
        if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
            holder_read(fd, h); /* final: its writer is gone */
            flock(fd, LOCK_UN);
            return 0;
        }
        if (errno == EINTR)
            continue;
        /* no flock on this filesystem (the daemon warned in its log): the pid tells */
        if (errno != EWOULDBLOCK && !pid_alive(pid)) {
            holder_read(fd, h);
            return 0;
        }
        if (timeout_ms != STAGELOCK_FOREVER && clock_mono_ms() >= deadline)
            return ETIMEDOUT;
        poll_pause();
    }
}
