/* fs/bgthread.c - helper-thread life cycle (see fs/bgthread.h). */
#include "fs/bgthread.h"

#include <errno.h>
#include <time.h>

#include "common/log.h"

void bgthread_init(struct bgthread *t)
{
    pthread_condattr_t ca;

    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    t->stopping = false;
    t->exited = false;
    t->started = false;
}

int bgthread_start(struct bgthread *t, const char *name, void *(*fn)(void *), void *arg,
                   struct err *err)
{
    int rc = pthread_create(&t->thread, NULL, fn, arg);

    if (rc != 0)
        return ERR(err, rc, "%s: pthread_create failed: %s", name, errno_name(rc));
    t->started = true;
    pthread_setname_np(t->thread, name);
    return 0;
}

void bgthread_exiting(struct bgthread *t)
{
    t->exited = true;
    pthread_cond_broadcast(&t->cv);
}

bool bgthread_stop(struct bgthread *t, unsigned wait_ms, const char *what)
{
    struct timespec ts;
    bool exited;

    if (!t->started)
        return true;
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_cond_broadcast(&t->cv);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(wait_ms / 1000);
    ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (!t->exited && pthread_cond_timedwait(&t->cv, &t->mu, &ts) != ETIMEDOUT) {
    }
    exited = t->exited;
    pthread_mutex_unlock(&t->mu);
    if (!exited) {
        LOG_WARN("%s: thread still busy at shutdown, not joined", what);
        return false;
    }
    pthread_join(t->thread, NULL);
    t->started = false;
    return true;
}

void bgthread_destroy(struct bgthread *t)
{
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
}

