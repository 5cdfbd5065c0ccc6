/* fs/flusher.c - the writeback-mode flusher (see fs/flusher.h). Lock rule: fl->t.mu guards
 * entries and passes; the thread copies the paths under the lock and does the opens and syncs
 * without it. */
#include "fs/flusher.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/bgthread.h"

#define FLUSHER_STOP_WAIT_MS 3000

struct flush_entry {
    char *path;
    unsigned refs;
    struct flush_entry *next;
};

struct flusher {
    char *mountpoint;
    uint32_t period_ms;
    struct bgthread t;
    struct flush_entry *entries; /* guarded by t.mu */
    uint64_t passes;             /* guarded by t.mu */
};

static void flusher_sync_one(const struct flusher *fl, const char *path)
{
    char full[8192];
    int n = snprintf(full, sizeof(full), "%s/%s", fl->mountpoint, path);

    if (n < 0 || (size_t)n >= sizeof(full))
        return;
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return; /* gone: the release will unregister it */
    if (sync_file_range(fd, 0, 0,
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER) != 0)
        LOG_DEBUG("flusher: sync_file_range failed path=%s errno=%s", path, errno_name(errno));
    close(fd);
}

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
        for (struct flush_entry *e = fl->entries; e != NULL && paths != NULL; e = e->next)
            paths[k++] = strdup(e->path);
        pthread_mutex_unlock(&fl->t.mu);
        for (size_t i = 0; i < k; i++) {
            if (paths[i] != NULL)
                flusher_sync_one(fl, paths[i]);
            free(paths[i]);
        }
        free(paths);
        pthread_mutex_lock(&fl->t.mu);
        fl->passes++;
    }
    bgthread_exiting(&fl->t);
    pthread_mutex_unlock(&fl->t.mu);
    return NULL;
}

struct flusher *flusher_new(const char *mountpoint, uint32_t period_ms, struct err *err)
{
    struct flusher *fl = calloc(1, sizeof(*fl));

    if (fl != NULL)
        fl->mountpoint = strdup(mountpoint);
    if (fl == NULL || fl->mountpoint == NULL) {
        free(fl);
        ERR(err, ENOMEM, "flusher: out of memory");
        return NULL;
    }
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
    free(fl->mountpoint);
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

uint64_t flusher_passes(struct flusher *fl)
{
    pthread_mutex_lock(&fl->t.mu);
    uint64_t n = fl->passes;
    pthread_mutex_unlock(&fl->t.mu);
    return n;
}
