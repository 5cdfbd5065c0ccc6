/* fs/workers.c - the worker pool (see fs/workers.h): a FIFO of jobs under one mutex and
 * condition variable; threads are named "bfs-worker-N". Lock rule: w->mu guards head, tail,
 * stopping; it is never held while a job runs. */
#include "fs/workers.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define WORKERS_MAX 64u

struct job {
    workers_job_fn *fn;
    void *arg;
    struct job *next;
};

struct workers {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head; /* guarded by mu */
    struct job *tail; /* guarded by mu */
    bool stopping;    /* guarded by mu */
    unsigned n_threads;
    unsigned n_started;
    pthread_t threads[WORKERS_MAX];
};

struct workers *workers_new(unsigned n_threads)
{
    struct workers *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    if (n_threads == 0)
        n_threads = 1;
    if (n_threads > WORKERS_MAX)
        n_threads = WORKERS_MAX;
    w->n_threads = n_threads;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    return w;
}

static void *workers_main(void *arg)
{
    struct workers *w = arg;

    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (w->head == NULL && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        struct job *j = w->head;
        if (j == NULL) { /* stopping and drained */
            pthread_mutex_unlock(&w->mu);
            return NULL;
        }
        w->head = j->next;
        if (w->head == NULL)
            w->tail = NULL;
        pthread_mutex_unlock(&w->mu);
        j->fn(j->arg);
        free(j);
    }
}

int workers_start(struct workers *w, struct err *err)
{
    for (unsigned i = w->n_started; i < w->n_threads; i++) {
        int rc = pthread_create(&w->threads[i], NULL, workers_main, w);
        if (rc != 0)
            return ERR(err, rc, "workers: pthread_create failed");
        char name[24]; /* "bfs-worker-63" fits the 16-byte thread name */
        snprintf(name, sizeof(name), "bfs-worker-%u", i);
        pthread_setname_np(w->threads[i], name);
        w->n_started = i + 1;
    }
    return 0;
}

int workers_submit(struct workers *w, workers_job_fn *fn, void *arg)
{
    struct job *j = malloc(sizeof(*j));

    if (j == NULL)
        return ENOMEM;
    j->fn = fn;
    j->arg = arg;
    j->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->stopping || w->n_started == 0) {
        pthread_mutex_unlock(&w->mu);
        free(j);
        return ECANCELED;
    }
    if (w->tail != NULL)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

void workers_stop(struct workers *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (unsigned i = 0; i < w->n_started; i++)
        pthread_join(w->threads[i], NULL);
    w->n_started = 0;
}

void workers_free(struct workers *w)
{
    if (w == NULL)
        return;
    workers_stop(w);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
