/* fs/warmer.h - write-through mode: keeps the kernel's page cache of each live "-wal" file
 * up to date, so that a SQLite frame costs one FUSE WRITE per write(2) instead of two.
 * Why:     a WAL frame is 24 + page_size bytes, so SQLite's page write straddles two cache
 *          pages. Without the writeback cache, Linux's FUSE write path ends a WRITE request at
 *          a page it only partly fills unless that page is up to date, so the 4 KiB page write
 *          of a frame became two requests (2.75 requests per one-page transaction measured).
 *          Pages become up to date only by being read; the WAL is rewritten in place after each
 *          checkpoint, so reading it once through the mount makes every later frame write a
 *          single request (and checkpoints and readers then hit the cache too).
 * How:     at each WAL restart (a write at offset 0) the mount asks for a warm-up; a thread
 *          opens MOUNTPOINT/path (through the mount, never on the session thread) and reads its
 *          first WARMER_MAX_BYTES. Pages already up to date cost no FUSE request; the others
 *          cost one READ each, once per WAL file. The kernel's page locks order these reads
 *          with the app's writes, so the cache never holds stale bytes.
 * Owns:    its thread and the queue of paths (deduplicated).
 * Threads: warmer_request is safe from any thread (one mutex, never held across I/O).
 * Errors:  warmer_new returns NULL with err set; warm-up failures are only logged (debug). */
#ifndef BFS_FS_WARMER_H
#define BFS_FS_WARMER_H

#include <stdint.h>

#include "common/err.h"

#define WARMER_MAX_BYTES (16u << 20) /* a default WAL cycle is ~4 MiB; bigger ones pay reads */

struct warmer;

struct warmer *warmer_new(const char *mountpoint, struct err *err);
/* Stops the thread (waits a bounded time for a read in progress) and frees. NULL: no-op. */
void warmer_free(struct warmer *w);
/* Queues a warm-up of path (relative to the mount root). NULL w is a no-op. */
void warmer_request(struct warmer *w, const char *path);
/* Warm-ups done (tests, stats). */
uint64_t warmer_passes(struct warmer *w);

#endif
