/* tests/unit/test_fs_stagelock.c - the staging lock (fs/stagelock.c, compiled in here): a
 * second taker is refused while a daemon serves, and the other side (bottomlessfs -u) waits
 * until the holder is gone and reads how it ended: flushed, not flushed, or killed. */
#include "../../fs/stagelock.c"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/bfs-stagelock-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/lock", dir);
    unlink(p);
    rmdir(dir);
}

TestSuite(fs_stagelock, .init = setup, .fini = teardown);

/* A child that takes the lock, notes "serving", signals the pipe, waits for a byte on the
 * other pipe, then notes final (or is killed) and exits. */
static pid_t holder_start(int *go_fd, int *ready_fd, enum stagelock_state final)
{
    int ready[2], go[2];
    cr_assert_eq(pipe(ready), 0);
    cr_assert_eq(pipe(go), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct err e = {0};
        int fd = stagelock_take(dir, 0, &e);
        if (fd < 0)
            _exit(2);
        stagelock_note(fd, STAGELOCK_SERVING, "/mnt/x y");
        char c = 'r';
        if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(3);
        stagelock_note(fd, final, "/mnt/x y");
        _exit(0);
    }
    close(ready[1]);
    close(go[0]);
    char c;
    cr_assert_eq(read(ready[0], &c, 1), 1);
    *go_fd = go[1];
    *ready_fd = ready[0];
    return pid;
}

static void check_end(enum stagelock_state final, bool kill_it)
{
    int go, ready;
    pid_t pid = holder_start(&go, &ready, final);
    struct err e = {0};
    struct stagelock_holder h;

    cr_expect_lt(stagelock_take(dir, 0, &e), 0, "a second taker got the lock");
    cr_expect(strstr(e.msg, "already served by bottomlessfs pid") != NULL, "%s", e.msg);
    int fd = stagelock_open_note(dir, &h, &e);
    cr_assert_geq(fd, 0, "%s", e.msg);
    cr_expect_eq(h.pid, (long)pid);
    cr_expect_eq(h.state, STAGELOCK_SERVING);
    cr_expect_str_eq(h.mountpoint, "/mnt/x y");
    cr_expect_eq(stagelock_wait_free(fd, pid, &h, 200), ETIMEDOUT, "the holder still runs");

    if (kill_it)
        kill(pid, SIGKILL);
    else
        cr_assert_eq(write(go, "g", 1), 1);
    cr_expect_eq(stagelock_wait_free(fd, pid, &h, STAGELOCK_FOREVER), 0);
    cr_expect_eq(h.state, kill_it ? STAGELOCK_SERVING : (int)final);
    int st;
    waitpid(pid, &st, 0);
    close(fd);
    close(go);
    close(ready);
}

Test(fs_stagelock, exited_flushed)
{
    check_end(STAGELOCK_EXITED, false);
}

Test(fs_stagelock, exited_unflushed)
{
    check_end(STAGELOCK_EXITED_UNFLUSHED, false);
}

Test(fs_stagelock, killed_leaves_serving)
{
    check_end(STAGELOCK_EXITED, true);
}

Test(fs_stagelock, no_lock_file)
{
    struct stagelock_holder h;
    struct err e = {0};
    cr_expect_lt(stagelock_open_note(dir, &h, &e), 0);
    cr_expect_eq(e.code, ENOENT);
}
