/* tests/unit/test_fs_workers.c - the worker pool (fs/workers.c, compiled in here): every
 * submitted job runs exactly once, jobs run concurrently, stop drains the queue, submit after
 * stop is refused with ECANCELED. */
#include "../../fs/workers.c"

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <unistd.h>

struct counter {
    atomic_int n;
    atomic_int running;
    atomic_int max_running;
};

static void count_job(void *arg)
{
    struct counter *c = arg;
    atomic_fetch_add(&c->n, 1);
}

static void slow_job(void *arg)
{
    struct counter *c = arg;
    int now = atomic_fetch_add(&c->running, 1) + 1;
    int seen = atomic_load(&c->max_running);
    while (now > seen && !atomic_compare_exchange_weak(&c->max_running, &seen, now)) {
    }
    usleep(20000);
    atomic_fetch_sub(&c->running, 1);
    atomic_fetch_add(&c->n, 1);
}

Test(fs_workers, every_job_runs_once_and_stop_drains)
{
    struct counter c = {0};
    struct err err = {0};
    struct workers *w = workers_new(4);
    cr_assert_not_null(w);
    cr_assert_eq(workers_submit(w, count_job, &c), ECANCELED); /* not started yet */
    cr_assert_eq(workers_start(w, &err), 0, "%s", err.msg);
    for (int i = 0; i < 10000; i++)
        cr_assert_eq(workers_submit(w, count_job, &c), 0);
    workers_stop(w);
    cr_expect_eq(atomic_load(&c.n), 10000);
    cr_expect_eq(workers_submit(w, count_job, &c), ECANCELED);
    workers_free(w);
}

Test(fs_workers, jobs_run_concurrently)
{
    struct counter c = {0};
    struct err err = {0};
    struct workers *w = workers_new(3);
    cr_assert_eq(workers_start(w, &err), 0, "%s", err.msg);
    for (int i = 0; i < 9; i++)
        cr_assert_eq(workers_submit(w, slow_job, &c), 0);
    workers_free(w); /* stops (drains) and frees */
    cr_expect_eq(atomic_load(&c.n), 9);
    cr_expect_gt(atomic_load(&c.max_running), 1);
}
