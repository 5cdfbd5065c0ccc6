/* fs/workers.h - a small pool of threads for the FUSE operations that may block (fsync,
 * fdatasync, restores, bucket listings): the session thread submits a job and goes on serving;
 * the job replies to the kernel itself when it is done.
 * Owns:    its threads and queued jobs; workers_new() -> workers_start() -> workers_stop()
 *          (runs the jobs still queued, then joins) -> workers_free().
 * Threads: workers_submit() is safe from any thread. Jobs run concurrently with each other.
 * Errors:  workers_submit() returns ENOMEM or ECANCELED (stopped); the job did not run and the
 *          caller still owns arg. */
#ifndef BFS_FS_WORKERS_H
#define BFS_FS_WORKERS_H

#include <stddef.h>

#include "common/err.h"

typedef void workers_job_fn(void *arg);

struct workers;

struct workers *workers_new(unsigned n_threads);
int workers_start(struct workers *w, struct err *err);
int workers_submit(struct workers *w, workers_job_fn *fn, void *arg);
void workers_stop(struct workers *w);
void workers_free(struct workers *w);

#endif
