/* fs/warmer.c - the write-through WAL cache warmer (see fs/warmer.h). Lock rule: w->t.mu guards
 * the queue and passes; the thread takes one path off the queue and does the open and reads
 * without the lock. */
#include "fs/warmer.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/bgthread.h"

#define WARMER_STOP_WAIT_MS 3000
#define WARMER_CHUNK (128u << 10)

struct warm_entry {
    char *path;
    struct warm_entry *next;
};

struct warmer {
    char *mountpoint;
    struct bgthread t;
    struct warm_entry *queue; /* guarded by t.mu; FIFO */
    uint64_t passes;          /* guarded by t.mu */
};

static void warmer_read_one(const struct warmer *w, const char *path, char *buf)
{
    char full[8192];
    int n = snprintf(full, sizeof(full), "%s/%s", w->mountpoint, path);

    if (n < 0 || (size_t)n >= sizeof(full))
        return;
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return; /* deleted since: nothing to warm */
    for (off_t off = 0; off < (off_t)WARMER_MAX_BYTES; off += WARMER_CHUNK) {
        ssize_t got;
        do {
            got = pread(fd, buf, WARMER_CHUNK, off);
        } while (got < 0 && errno == EINTR);
        if (got < 0)
            LOG_DEBUG("warmer: read failed path=%s errno=%s", path, errno_name(errno));
        if (got < (ssize_t)WARMER_CHUNK)
            break;
    }
    close(fd);
}

static void *warmer_main(void *arg)
{
    struct warmer *w = arg;
    char *buf = malloc(WARMER_CHUNK);

    pthread_mutex_lock(&w->t.mu);
    while (!w->t.stopping) {
        if (w->queue == NULL) {
            pthread_cond_wait(&w->t.cv, &w->t.mu);
            continue;
        }
        struct warm_entry *e = w->queue;
        w->queue = e->next;
        pthread_mutex_unlock(&w->t.mu);
        if (buf != NULL)
            warmer_read_one(w, e->path, buf);
        free(e->path);
        free(e);
        pthread_mutex_lock(&w->t.mu);
        w->passes++;
    }
    bgthread_exiting(&w->t);
    pthread_mutex_unlock(&w->t.mu);
    free(buf);
    return NULL;
}

struct warmer *warmer_new(const char *mountpoint, struct err *err)
{
    struct warmer *w = calloc(1, sizeof(*w));

    if (w != NULL)
        w->mountpoint = strdup(mountpoint);
    if (w == NULL || w->mountpoint == NULL) {
        free(w);
        ERR(err, ENOMEM, "warmer: out of memory");
        return NULL;
    }
    bgthread_init(&w->t);
    if (bgthread_start(&w->t, "bfs-warmer", warmer_main, w, err) != 0) {
        warmer_free(w);
        return NULL;
    }
    return w;
}

void warmer_free(struct warmer *w)
{
    if (w == NULL || !bgthread_stop(&w->t, WARMER_STOP_WAIT_MS, "warmer"))
        return; /* still busy: leaked deliberately (fs/bgthread.h) */
    while (w->queue != NULL) {
        struct warm_entry *e = w->queue;
        w->queue = e->next;
        free(e->path);
        free(e);
    }
    bgthread_destroy(&w->t);
    free(w->mountpoint);
    free(w);
}

void warmer_request(struct warmer *w, const char *path)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->t.mu);
    struct warm_entry **pp = &w->queue;
    for (; *pp != NULL; pp = &(*pp)->next)
        if (strcmp((*pp)->path, path) == 0) {
            pthread_mutex_unlock(&w->t.mu); /* already queued */
            return;
        }
    struct warm_entry *e = calloc(1, sizeof(*e));
    if (e != NULL)
        e->path = strdup(path);
    if (e != NULL && e->path != NULL) {
        *pp = e;
        pthread_cond_signal(&w->t.cv);
    } else {
        free(e);
    }
    pthread_mutex_unlock(&w->t.mu);
}

uint64_t warmer_passes(struct warmer *w)
{
    pthread_mutex_lock(&w->t.mu);
    uint64_t n = w->passes;
    pthread_mutex_unlock(&w->t.mu);
    return n;
}
