/* tests/lib/tapvfs.h - a SQLite VFS shim over the default (unix) VFS that reports every
 * xWrite / xTruncate of a "-wal" file to callbacks, after performing it: exactly the sequence
 * of operations the FUSE daemon sees for a -wal file (minus the kernel's request splitting).
 * Everything else (main db, journals, -shm, locks) is forwarded untouched.
 * Use: struct tapvfs *t = tapvfs_register(&hooks); then
 *      sqlite3_open_v2(path, &db, flags, tapvfs_name(t)); ... tapvfs_unregister(t) after closing.
 * Owns:    the registered VFS; tapvfs_unregister() unregisters and frees (NULL is a no-op).
 * Threads: callbacks run on the thread that called SQLite. */
#ifndef BFS_TESTS_LIB_TAPVFS_H
#define BFS_TESTS_LIB_TAPVFS_H

#include <stddef.h>
#include <stdint.h>

struct tapvfs_hooks {
    void *arg;
    /* A write of len bytes at off to the WAL file path (absolute) has just succeeded. */
    void (*wal_write)(void *arg, const char *path, uint64_t off, const void *buf, size_t len);
    /* The WAL file has just been truncated to size. */
    void (*wal_truncate)(void *arg, const char *path, uint64_t size);
    /* Optional: the WAL file was synced (xSync). */
    void (*wal_sync)(void *arg, const char *path);
};

/* Registers a uniquely named VFS (not the default); NULL on failure. */
struct tapvfs *tapvfs_register(const struct tapvfs_hooks *hooks);
const char *tapvfs_name(const struct tapvfs *t);
void tapvfs_unregister(struct tapvfs *t);

#endif
