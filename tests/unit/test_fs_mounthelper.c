/* tests/unit/test_fs_mounthelper.c - the mount helper child's "inside a job" flag, which an
 * app's deletion of a -wal waits on (mounthelper_wait_idle), and the cancelling of syncs
 * (mounthelper_cancel_syncs, flusher_retire) that keeps the child off a database once its -wal
 * is deleted. The "mount" here is a plain directory: the child only prefixes job paths with
 * it. A FIFO holds the child inside a job: its open(2) waits for a writer, and a writer's
 * non-blocking open succeeds only while the child waits there (else ENXIO). */
#include "../../fs/bgthread.c" /* fs/ objects are not in a library */
#include "../../fs/flusher.c"
#include "../../fs/mounthelper.c"
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

/* Whether the child is (within ms) waiting in the open of the FIFO: then lets it through. */
static bool opened_within(const char *fifo, int ms)
{
    for (int i = 0; i < ms; i++) {
        int w = open(fifo, O_WRONLY | O_NONBLOCK);
        if (w >= 0) {
            close(w);
            return true;
        }
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void make_fifo(const char *dir, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", dir, name);
    cr_assert_eq(mkfifo(out, 0600), 0, "mkfifo %s: %s", out, strerror(errno));
}

Test(fs_mounthelper, a_sync_submitted_before_a_cancel_never_opens_its_file)
{
    char dir[] = "/tmp/bfs-mh-XXXXXX", db[64], wal[64];
    struct err e = {0};

    signal(SIGPIPE, SIG_IGN);
    cr_assert(mkdtemp(dir) != NULL);
    make_fifo(dir, "x.db", db, sizeof(db));
    make_fifo(dir, "y.db-wal", wal, sizeof(wal));
    struct mounthelper *mh = mounthelper_new(dir, false, &e);
    cr_assert(mh != NULL, "%s", e.msg);

    /* control: a sync under the current epoch opens its file */
    mounthelper_submit_sync(mh, "x.db", mounthelper_epoch(mh));
    cr_assert(opened_within(db, 5000), "a current sync never opened its file");
    cr_assert(mounthelper_wait_idle(mh, 5000));

    uint32_t old = mounthelper_epoch(mh);
    mounthelper_cancel_syncs(mh);
    cr_expect_neq(mounthelper_epoch(mh), old);
    mounthelper_submit_sync(mh, "x.db", old);
    mounthelper_submit(mh, 'R', "y.db-wal"); /* runs after the stale sync: proves it was seen */
    cr_assert(opened_within(wal, 5000), "the child never got past the cancelled sync");
    cr_assert(mounthelper_wait_idle(mh, 5000));
    cr_expect(!opened_within(db, 50), "the cancelled sync opened its file");

    mounthelper_free(mh);
    unlink(db);
    unlink(wal);
    rmdir(dir);
}

Test(fs_mounthelper, a_retired_wal_gets_no_more_syncs_until_it_is_added_again)
{
    char dir[] = "/tmp/bfs-mh-XXXXXX", db[64];
    struct err e = {0};

    signal(SIGPIPE, SIG_IGN);
    cr_assert(mkdtemp(dir) != NULL);
    make_fifo(dir, "a.db", db, sizeof(db)); /* "a.db-wal" is absent: its own syncs fail */
    struct mounthelper *mh = mounthelper_new(dir, false, &e);
    cr_assert(mh != NULL, "%s", e.msg);
    struct flusher *fl = flusher_new(mh, 1, &e);
    cr_assert(fl != NULL, "%s", e.msg);

    flusher_add(fl, "a.db-wal");
    cr_assert(opened_within(db, 5000), "the flusher never synced the database");
    /* as fs_op_unlink does: the child may be inside a sync of a.db now, others queued */
    flusher_retire(fl, "a.db-wal");
    mounthelper_cancel_syncs(mh);
    for (int i = 0; i < 5000 && mounthelper_busy(mh); i++)
        opened_within(db, 1); /* let a sync already inside its open through */
    cr_assert(mounthelper_wait_idle(mh, 0), "the child stayed inside a job");
    cr_expect(!opened_within(db, 100), "a sync of the retired -wal's database ran");

    flusher_add(fl, "a.db-wal"); /* a new -wal by that name: synced again */
    cr_expect(opened_within(db, 5000), "the revived entry was never synced");
    flusher_remove(fl, "a.db-wal");
    flusher_remove(fl, "a.db-wal");
    flusher_free(fl);
    while (!mounthelper_wait_idle(mh, 0))
        opened_within(db, 1);
    mounthelper_free(mh);
    unlink(db);
    rmdir(dir);
}
