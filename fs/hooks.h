/* fs/hooks.h - the replication hooks: how the FUSE daemon (fs/) tells the replicator
 * (fs/replica.c) what happens to the files of the mount.
 *
 * What:    a table of function pointers plus one void *arg. The daemon calls them at fixed points
 *          of each FUSE operation. Every pointer may be NULL (a no-op), and the whole table may be
 *          zeroed (-o noreplicate: pure passthrough).
 * Setup:   main() calls replica_hooks_init(cfg, &hooks, &err) once, before the kernel mount and
 *          before any thread exists (it must not start threads: the daemon may still fork). It
 *          fills the table. Threads start in mount_start, which runs after the fork, after the
 *          kernel mount and before the first request is served. shutdown is the last call and
 *          frees everything behind arg.
 * Paths:   relative to the mount root, no leading slash, '/'-separated ("app.db", "d/app.db-wal");
 *          the root itself is "". BACKING_DIR/.bottomless (the replicator's staging area) is hidden
 *          from the mount and never reported; fs_hook_env.staging_dir names it.
 * Threads: [loop] hooks run on the single FUSE session thread, one at a time: they must not block
 *          (no network, no disk fsync, no waiting for locks held across I/O). The FUSE write path
 *          is pwrite + write_before/write_after + reply, so those two must be cheap.
 *          [worker] hooks run on one of the daemon's worker threads and may block; several may
 *          run at once and at the same time as [loop] hooks, so the replicator locks its own state.
 *          [main] hooks run on the main thread while no request is being served.
 *          Exception: an open/create/truncate of a virtual entry runs on a worker right after
 *          its materialise, so file_open, truncate_* and release may then come from a worker.
 * Handles: file_open returns an opaque per-open handle (NULL: "not interesting", no further
 *          per-handle hooks except release(NULL) which is not called). The daemon stores it in
 *          its file handle and passes it to every later hook for that open; release is called
 *          exactly once per non-NULL handle, after the last write/fsync of that open. Several
 *          opens of one file get several handles. Writes from the kernel's page writeback (mmap
 *          of -shm, writeback mode) arrive through any open handle of the file.
 * Errors:  hooks returning int return 0 or a positive errno. Only mount_start, fsync,
 *          materialise, list_virtual, write_before and truncate_before can fail an operation;
 *          replication trouble elsewhere is recorded by the replicator (status file), never
 *          given to the app (c-style B8). write_before / truncate_before fail only when the
 *          staging disk is full while committed -wal frames must be saved first (ENOSPC).
 * Order:   for one file: file_open, then any sequence of {write,truncate,fallocate}_{before,after}
 *          pairs (before and after of one operation are adjacent on the loop thread, with the
 *          backing syscall between them), fsync calls (on workers, concurrently with loop-thread
 *          writes of other handles), then release. unlinked/renamed come after the backing
 *          syscall succeeded. */
#ifndef BFS_FS_HOOKS_H
#define BFS_FS_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/err.h"

struct fs_config;

/* Given to mount_start; valid until shutdown returns. */
struct fs_hook_env {
    const struct fs_config *cfg; /* the parsed options (fs/config.h) */
    const char *backing_dir;     /* absolute, canonical */
    int backing_fd;              /* O_PATH|O_DIRECTORY fd of backing_dir (borrowed) */
    const char *mountpoint;      /* absolute, canonical */
    const char *staging_dir;     /* backing_dir + "/.bottomless", created by the daemon (0700) */
    /* Tell the kernel that the daemon itself changed path behind the app's back (a restore
     * wrote it): drops cached pages and attributes of path. Safe from any thread except the
     * session thread inside a [loop] hook (it would deadlock); returns 0 or a positive errno. */
    int (*inval_path)(void *inval_arg, const char *path);
    void *inval_arg;
    /* [loop only: inside a *_before hook of path] Moves the backing file at path (relative)
     * to stash (absolute, on the backing filesystem, in staging_dir) and puts a new empty file
     * of the same size, mode and owner at path, which every open handle of the old one then
     * uses (same fds, same node id). The caller owns the file at stash from then on. 0, or a
     * positive errno with nothing changed. */
    int (*replace_file)(void *replace_arg, const char *path, const char *stash);
    void *replace_arg;
};

/* Emits one virtual directory entry (see list_virtual). name is a single component. */
typedef void fs_hook_emit_fn(void *emit_arg, const char *name, const struct stat *st);

struct fs_hooks {
    void *arg; /* passed as the first argument of every hook */

    /* [main] After the kernel mount, before serving (and after daemonising). A nonzero return
     * unmounts and makes the daemon exit non-zero with err's message (e.g. bucket unreachable). */
    int (*mount_start)(void *arg, const struct fs_hook_env *env, struct err *err);
    /* [main] After the kernel unmount (or a fatal signal): flush, stop threads, free arg.
     * Bounded by cfg->flush_timeout_ms. Called exactly once if mount_start succeeded.
     * Returns 0 when everything committed reached S3, else a positive errno (what is left
     * stays staged for the next mount). */
    int (*shutdown)(void *arg);

    /* [loop] A file was opened or created (O_CREAT in flags when create) on backing fd (a real,
     * readable fd: O_WRONLY opens are upgraded to O_RDWR for the replicator's benefit; borrowed,
     * valid until release). Returns the per-open handle or NULL. O_TRUNC is never done by the
     * open itself: the daemon reports it as truncate_before/after(size 0) right after file_open. */
    void *(*file_open)(void *arg, const char *path, int fd, int flags);
    /* [loop] Called once per non-NULL handle when the open is closed. */
    void (*release)(void *arg, void *fh);

    /* [loop] Before a write of len bytes at off is applied to the backing file: the old bytes
     * are still there (stage them / copy-on-write now). Nonzero (ENOSPC): the daemon does not
     * write, calls no write_after and replies with that errno (like a full disk). */
    int (*write_before)(void *arg, void *fh, uint64_t off, size_t len);
    /* [loop] After it: result is the byte count written (may be short) or -errno. buf is
     * borrowed for the call only. */
    void (*write_after)(void *arg, void *fh, uint64_t off, const void *buf, size_t len,
                        ssize_t result);

    /* [loop] Around a size change (ftruncate, truncate(2), open O_TRUNC). fh is NULL when the
     * app truncated by path without an open handle of ours; path is always given. result is 0 or
     * a positive errno. truncate_before nonzero (ENOSPC): the daemon does not truncate, calls
     * no truncate_after and fails the operation with that errno. */
    int (*truncate_before)(void *arg, void *fh, const char *path, uint64_t size);
    void (*truncate_after)(void *arg, void *fh, const char *path, uint64_t size, int result);

    /* [loop] Around fallocate(2) (mode as given: PUNCH_HOLE, ZERO_RANGE, KEEP_SIZE...). */
    void (*fallocate_before)(void *arg, void *fh, int mode, uint64_t off, uint64_t len);
    void (*fallocate_after)(void *arg, void *fh, int mode, uint64_t off, uint64_t len, int result);

    /* [worker; the loop when small and not durable] fsync (datasync false) or fdatasync
     * (true) of an open file, called after the backing fsync succeeded. May block only in
     * durable mode (it waits for S3 here, with a deadline), always on a worker then. The
     * return value is what the app gets (e.g. EIO when the durable deadline passes). */
    int (*fsync)(void *arg, void *fh, bool datasync);

    /* [loop] After a successful unlink of path (files only; rmdir is not reported). Also
     * called, and the unlink reported as successful, when path is a virtual entry (exists
     * only in the bucket): the replicator then deletes it there (tombstone) and stops
     * listing it. */
    void (*unlinked)(void *arg, const char *path);
    /* [loop; a worker when the source was a virtual entry restored first] After a successful
     * rename (flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE). For EXCHANGE both paths still
     * exist, with swapped contents. A rename over an existing file implies that file's content
     * is gone (no separate unlinked). */
    void (*renamed)(void *arg, const char *from, const char *to, unsigned flags);

    /* Virtual entries: databases that exist only in the bucket. */
    /* [loop] Is path (absent from BACKING_DIR) a virtual entry? 0 and *st_out filled (mode,
     * size, mtime; uid/gid/ino are set by the daemon) if so, ENOENT if not. Must answer from a
     * cache, never the network. */
    int (*lookup_virtual)(void *arg, const char *path, struct stat *st_out);
    /* [worker] List the virtual entries of directory dir (calls emit for each). Names that also
     * exist in BACKING_DIR are dropped by the daemon. May block (refresh the cached listing). */
    int (*list_virtual)(void *arg, const char *dir, fs_hook_emit_fn *emit, void *emit_arg);
    /* [worker] Make path exist in BACKING_DIR (restore it) before it is opened or changed.
     * Concurrent calls for one path must wait for the same restore. 0 when the file now exists,
     * else a positive errno for the app (EIO on a failed restore, logged by the replicator). */
    int (*materialise)(void *arg, const char *path);

    /* [loop] Render MOUNTPOINT/.bottomless/status (JSON) into out (cap already set). Called when
     * the status file is opened; reads of that open see this content. */
    int (*render_status)(void *arg, struct buf *out);
};

/* Implemented by the replicator in fs/replica.c (a weak no-op in fs/hooks_stub.c zeroes the
 * table until it exists). [main], before mounting, no threads. 0, or a positive errno with err
 * set (bad configuration): the daemon then exits non-zero before mounting. */
int replica_hooks_init(const struct fs_config *cfg, struct fs_hooks *out, struct err *err);

#endif
