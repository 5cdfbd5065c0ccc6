/* common/fileio.h - robust file I/O helpers: EINTR loops, short-write loops, crash-safe replace.
 * Owns:    nothing; fds and paths are the caller's.
 * Threads: safe (no shared state).
 * Errors:  0 or a positive errno, with a message naming the path in *err. */
#ifndef BFS_COMMON_FILEIO_H
#define BFS_COMMON_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

/* Full-length write/pwrite/read (read stops early only at EOF; *got_out says how much). */
int fileio_write_all(int fd, const void *p, size_t len);
int fileio_pwrite_all(int fd, const void *p, size_t len, uint64_t off);
int fileio_pread_full(int fd, void *p, size_t len, uint64_t off, size_t *got_out);
/* fsync of the directory that holds path (for rename durability). */
int fileio_fsync_parent(const char *path, struct err *err);
int fileio_fsync_dir(const char *dir, struct err *err);
/* Writes data to "<path>.tmp.<pid>", fsyncs, renames over path, fsyncs the directory. */
int fileio_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                        struct err *err);
/* Reads a whole file (at most max bytes, else EMSGSIZE). Caller frees *data_out. */
int fileio_read_file(const char *path, size_t max, uint8_t **data_out, size_t *len_out,
                     struct err *err);
/* mkdir -p with the given mode for created components. */
int fileio_mkdir_p(const char *path, mode_t mode, struct err *err);
/* Removes a directory tree (like rm -rf); missing is not an error. */
int fileio_rm_rf(const char *path, struct err *err);
/* Points stdin, stdout and stderr at /dev/null (a process that detaches from its caller must
 * not keep the caller's terminal or pipe). Best effort. */
void fileio_stdio_to_null(void);

#endif
