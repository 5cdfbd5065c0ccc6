/* wal/snapshot.h - a copy-on-write point-in-time image of a database file, read in the
 * background while the application keeps writing the file.
 * What:    snapshot_new() fixes the image: the first `size` bytes of the file as they are at
 *          that moment. Before any write or truncate of the file, the owner calls
 *          snapshot_cow(): the old contents of the 4 KiB units in the range that the reader has
 *          not passed yet are copied into a sparse side file (same offsets) first. The reader
 *          takes the image in order with snapshot_read(): units saved in the side file come
 *          from there, the rest straight from the file. Memory: one bit per 4 KiB unit.
 * Owns:    its own read-only fd of the db file and the side file (unlinked by snapshot_free).
 * Threads: snapshot_cow and snapshot_read may run concurrently (internal mutex held only for
 *          the copy of the units concerned / of one chunk).
 * Errors:  0 or a positive errno with *err. A failed copy-on-write marks the snapshot broken
 *          (snapshot_read then fails with EIO): the image is never silently wrong.
 *          snapshot_cancel() does the same on purpose (the owner stops protecting the image,
 *          e.g. it abandons it for a newer one): every later snapshot_read fails with
 *          ECANCELED, so an image read after the cancel can never be completed. */
#ifndef BFS_WAL_SNAPSHOT_H
#define BFS_WAL_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define SNAPSHOT_UNIT 4096u

struct snapshot;

/* db_path is opened read-only; size = image size (normally the file size now). cow_path is
 * created (truncated) with mode 0600. */
struct snapshot *snapshot_new(const char *db_path, uint64_t size, const char *cow_path,
                              struct err *err);
int snapshot_cow(struct snapshot *s, uint64_t off, uint64_t len, struct err *err);
/* Next bytes of the image into buf (at most cap); *n_out = 0 at the end. */
int snapshot_read(struct snapshot *s, uint8_t *buf, size_t cap, size_t *n_out, struct err *err);
uint64_t snapshot_size(const struct snapshot *s);
uint64_t snapshot_pos(struct snapshot *s);
uint64_t snapshot_cow_units(struct snapshot *s); /* units saved so far (stats, tests) */
/* Thread-safe; snapshot_cow becomes a no-op. The reader still owns s (frees it). */
void snapshot_cancel(struct snapshot *s);
void snapshot_free(struct snapshot *s);         /* NULL is a no-op */

#endif
