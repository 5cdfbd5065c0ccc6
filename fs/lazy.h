/* fs/lazy.h - lazy restore: databases that exist in the bucket but not in BACKING_DIR show up
 * in the mount as virtual entries and are restored into BACKING_DIR when first opened.
 *
 * What:    a cached bucket listing (db_name -> relative path, newest restorable generation,
 *          expected size, created time), refreshed at most once per ttl_ms by lazy_list() /
 *          lazy_refresh(); tombstoned databases and names deleted through the mount are hidden
 *          (a name deleted here stays hidden until the bucket has a generation newer than the
 *          deletion). Directories on the way to a bucket-only database are virtual directories.
 *          lazy_restore() restores one path with restore_run (newest generation) into
 *          BACKING_DIR; concurrent callers for one path wait for the same restore.
 * Owns:    the cache and the in-flight restore records; lazy_new() -> lazy_free(). Borrows the
 *          s3 client and the strings of its conf (they must outlive it).
 * Threads: every function is thread-safe. lazy_lookup() never blocks on I/O (cache only, one
 *          mutex); lazy_list(), lazy_refresh() and lazy_restore() touch the network (worker or
 *          main threads only). Lock: lazy.mu guards the cache and the restore list, is never held
 *          across I/O; lazy.refresh_mu serialises refreshes (held across the listing, taken
 *          before mu).
 * Errors:  0 or a positive errno. lazy_restore returns EIO for a failed restore and logs the
 *          reason (one line: lazy: restore failed db=... reason). */
#ifndef BFS_FS_LAZY_H
#define BFS_FS_LAZY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/err.h"
#include "fs/hooks.h"
#include "s3/s3.h"
#include "wal/layout.h"

struct lazy_conf {
    struct s3_client *s3;    /* borrowed */
    const char *backing_dir; /* absolute; restores go below it */
    int backing_fd;          /* O_PATH|O_DIRECTORY of backing_dir (borrowed) */
    const char *scratch_dir; /* restore scratch files (the staging dir); NULL: next to target */
    const char *hidden_name; /* root entry never listed nor restored (".bottomless") */
    uint32_t ttl_ms;         /* listing cache lifetime */
};

struct lazy;

struct lazy *lazy_new(const struct lazy_conf *conf, struct err *err);
void lazy_free(struct lazy *lz); /* NULL is a no-op */

/* Re-lists the bucket when the cache is older than ttl_ms (always when force). */
int lazy_refresh(struct lazy *lz, bool force, struct err *err);
/* Cache only: 0 and *st_out (mode, size, mtime, nlink) when path is a virtual file or
 * directory, ENOENT otherwise. */
int lazy_lookup(struct lazy *lz, const char *path, struct stat *st_out);
/* Refreshes when stale (a failed refresh keeps the old cache and is logged), then emits the
 * virtual entries directly inside dir ("" = root). */
int lazy_list(struct lazy *lz, const char *dir, fs_hook_emit_fn *emit, void *emit_arg);

/* Result of a restore, for the replicator glue. */
struct lazy_restored {
    bool restored; /* false: nothing to do (the path already existed, or a directory) */
    char db_name[1024];
    struct gen_id gen; /* generation restored */
};
/* Makes path exist in BACKING_DIR: 0 if it exists; a virtual directory is created (mkdir);
 * a virtual database is restored. ENOENT when path is unknown, EIO when the restore failed.
 * out may be NULL. */
int lazy_restore(struct lazy *lz, const char *path, struct lazy_restored *out);

/* path (a database) was deleted or renamed away through the mount: hide it from now on. */
void lazy_forget(struct lazy *lz, const char *path);

/* Status: number of virtual databases and of restores done / failed. */
struct lazy_stats {
    size_t n_virtual;
    uint64_t n_restores, n_restore_failures, n_refreshes, n_refresh_failures;
    int64_t listed_ms; /* unix ms of the last successful listing (0 = never) */
    char last_error[512];
};
void lazy_stats(struct lazy *lz, struct lazy_stats *out);
/* Calls fn for each virtual database (under lz's lock: fn must not call back into lz). */
typedef void lazy_each_fn(void *arg, const char *path, const char *db_name, uint64_t size,
                          bool size_known);
void lazy_each(struct lazy *lz, lazy_each_fn *fn, void *arg);

#endif
