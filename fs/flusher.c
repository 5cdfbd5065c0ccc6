/* fs/flusher.c - the writeback-mode flusher (see fs/flusher.h). Lock rule: fl->t.mu guards
 * entries; the thread copies the paths under the lock and hands them to the mount helper
 * without it. */
#include "fs/flusher.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "fs/bgthread.h"

#define FLUSHER_STOP_WAIT_MS 3000

struct flush_entry {
    char *path;
    unsigned refs;
    bool retired; /* its -wal was deleted: no more syncs until an open revives it */
    struct flush_entry *next;
};

struct flusher {
    struct mounthelper *mh; /* borrowed */
    uint32_t period_ms;
    struct bgthread t;
    struct flush_entry *entries; /* guarded by t.mu */
};

static void *flusher_main(void *arg)
{
    struct flusher *fl = arg;

    pthread_mutex_lock(&fl->t.mu);
    while (!fl->t.stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)fl->period_ms * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        while (!fl->t.stopping &&
               pthread_cond_timedwait(&fl->t.cv, &fl->t.mu, &ts) != ETIMEDOUT) {
        }
        if (fl->t.stopping)
            break;
        size_t n = 0;
        for (struct flush_entry *e = fl->entries; e != NULL; e = e->next)
            n++;
        char **paths = n != 0 ? calloc(n, sizeof(*paths)) : NULL;
        size_t k = 0;
        for (struct flush_entry *e = fl->entries; e != NULL && paths != NULL; e = e->next) {
            if (!e->retired)
                paths[k++] = strdup(e->path);
        }
        /* read under the lock that flusher_retire takes: syncs of an entry retired after
         * this carry an epoch its cancel makes stale (fs/mounthelper.h) */
        uint32_t epoch = mounthelper_epoch(fl->mh);
        pthread_mutex_unlock(&fl->t.mu);
        for (size_t i = 0; i < k; i++) {
            size_t len = paths[i] != NULL ? strlen(paths[i]) : 0;
            /* The database first: a checkpoint by a synchronous=OFF connection syncs neither
             * file, and its pages in the db would otherwise wait up to the kernel's 30 s while
             * the WAL they came from is written over (a killed daemon loses them). Then the
             * -wal. */
            if (len > 4 && strcmp(paths[i] + len - 4, "-wal") == 0) {
                paths[i][len - 4] = '\0';
                mounthelper_submit_sync(fl->mh, paths[i], epoch);
                paths[i][len - 4] = '-';
            }
            if (paths[i] != NULL)
                mounthelper_submit_sync(fl->mh, paths[i], epoch);
            free(paths[i]);
        }
        free(paths);
        pthread_mutex_lock(&fl->t.mu);
    }
    bgthread_exiting(&fl->t);
    pthread_mutex_unlock(&fl->t.mu);
    return NULL;
}

struct flusher *flusher_new(struct mounthelper *mh, uint32_t period_ms, struct err *err)
{
    struct flusher *fl = calloc(1, sizeof(*fl));

    if (fl == NULL) {
        ERR(err, ENOMEM, "flusher: out of memory");
        return NULL;
    }
    fl->mh = mh;
    fl->period_ms = period_ms != 0 ? period_ms : 100;
    bgthread_init(&fl->t);
    if (bgthread_start(&fl->t, "bfs-flusher", flusher_main, fl, err) != 0) {
        flusher_free(fl);
        return NULL;
    }
    return fl;
}

void flusher_free(struct flusher *fl)
{
    if (fl == NULL || !bgthread_stop(&fl->t, FLUSHER_STOP_WAIT_MS, "flusher"))
        return; /* still busy: leaked deliberately (fs/bgthread.h) */
    while (fl->entries != NULL) {
        struct flush_entry *e = fl->entries;
        fl->entries = e->next;
        free(e->path);
        free(e);
    }
    bgthread_destroy(&fl->t);
    free(fl);
}

void flusher_add(struct flusher *fl, const char *path)
{
    if (fl == NULL)
        return;
    pthread_mutex_lock(&fl->t.mu);
    for (struct flush_entry *e = fl->entries; e != NULL; e = e->next) {
        if (strcmp(e->path, path) == 0) {
            e->refs++;
            e->retired = false; /* a -wal by this name again */
            pthread_mutex_unlock(&fl->t.mu);
            return;
        }
    }
    struct flush_entry *e = calloc(1, sizeof(*e));
    if (e != NULL)
        e->path = strdup(path);
    if (e != NULL && e->path != NULL) {
        e->refs = 1;
        e->next = fl->entries;
        fl->entries = e;
    } else {
        free(e);
    }
    pthread_mutex_unlock(&fl->t.mu);
}

void flusher_remove(struct flusher *fl, const char *path)
{
    if (fl == NULL)
        return;
    pthread_mutex_lock(&fl->t.mu);
    for (struct flush_entry **pp = &fl->entries; *pp != NULL; pp = &(*pp)->next) {
        struct flush_entry *e = *pp;
        if (strcmp(e->path, path) == 0) {
            if (--e->refs == 0) {
                *pp = e->next;
                free(e->path);
                free(e);
            }
            break;
        }
    }
    pthread_mutex_unlock(&fl->t.mu);
}

void flusher_retire(struct flusher *fl, const char *path)
{
    if (fl == NULL)
        return;
    pthread_mutex_lock(&fl->t.mu);
    for (struct flush_entry *e = fl->entries; e != NULL; e = e->next) {
        if (strcmp(e->path, path) == 0)
            e->retired = true;
    }
    pthread_mutex_unlock(&fl->t.mu);
}
