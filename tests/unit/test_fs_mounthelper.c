/* tests/unit/test_fs_mounthelper.c - the mount helper child's "inside a job" flag, which an
 * app's deletion of a -wal waits on (mounthelper_wait_idle). The "mount" here is a plain
 * directory: the child only prefixes job paths with it. A FIFO holds the child inside a job:
 * its open(2) waits for a writer. */
#include "../../fs/mounthelper.c" /* fs/ objects are not in a library */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>

static bool busy_within(struct mounthelper *mh, int ms)
{
    for (int i = 0; i < ms && !mounthelper_busy(mh); i++) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return mounthelper_busy(mh);
}

Test(fs_mounthelper, the_child_is_busy_while_it_holds_a_file_and_idle_after)
{
    char dir[] = "/tmp/bfs-mh-XXXXXX", fifo[64];
    struct err e = {0};

    signal(SIGPIPE, SIG_IGN);
    cr_assert(mkdtemp(dir) != NULL);
    snprintf(fifo, sizeof(fifo), "%s/x.db-wal", dir);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    struct mounthelper *mh = mounthelper_new(dir, false, &e);
    cr_assert(mh != NULL, "%s", e.msg);

    cr_expect(!mounthelper_busy(mh));
    cr_expect(mounthelper_wait_idle(mh, 0), "idle, yet the wait failed");
    mounthelper_submit(mh, 'R', "x.db-wal"); /* blocks in the FIFO's open: a file held */
    cr_assert(busy_within(mh, 5000), "the child never started the job");
    cr_expect(!mounthelper_wait_idle(mh, 50), "the wait did not wait for the job");

    int w = open(fifo, O_WRONLY | O_NONBLOCK); /* succeeds only with a reader there */
    cr_assert(w >= 0, "no reader on the FIFO: %s", strerror(errno));
    cr_expect(mounthelper_wait_idle(mh, 5000), "the child did not finish its job");
    close(w);
    /* the job ended with the file closed: no reader is left on the FIFO */
    cr_expect(open(fifo, O_WRONLY | O_NONBLOCK) < 0 && errno == ENXIO);
    cr_expect(mounthelper_wait_idle(NULL, 0));

    /* a child killed inside a job holds nothing: not busy, and no wait */
    mounthelper_submit(mh, 'R', "x.db-wal");
    cr_assert(busy_within(mh, 5000), "the child never started the second job");
    cr_assert_eq(kill(mounthelper_pid(mh), SIGKILL), 0);
    cr_expect(mounthelper_wait_idle(mh, 5000), "a dead child still counts as busy");

    mounthelper_free(mh);
    unlink(fifo);
    rmdir(dir);
}
