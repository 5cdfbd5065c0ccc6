/* fs/fs.h - the filesystem object shared by the FUSE handlers (fs/ops*.c) and main.
 * Owns:    struct fs owns the inode table, the worker pool, the backing directory fd and the
 *          hook table's lifetime order (fs_new() -> fs_free()). Per-open state is struct
 *          fs_file (fi->fh), created by open/create, freed by release.
 * Threads: handlers run on the single FUSE session thread ("loop"); slow work (fsync, restores,
 *          virtual listings) runs on fs->workers, which reply to the kernel themselves. Fields
 *          below are read-only after fs_new() unless they name their lock.
 * Errors:  handlers reply with the backing syscall's errno, as is (c-style B8). */
#ifndef BFS_FS_FS_H
#define BFS_FS_FS_H

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/buf.h"
#include "common/err.h"
#include "fs/config.h"
#include "fs/hooks.h"
#include "fs/inode.h"
#include "fs/loop.h"
#include "fs/workers.h"

#define FS_TIMEOUT_SECS 86400.0
#define FS_STATUS_FILE_NAME "status"
#define FS_STATS_FILE_NAME "stats" /* FUSE request counters (fs/loop.h) */
#define FS_STATUS_MAX_BYTES (16u << 20)
#define FS_PATH_MAX 4096

struct fs {
    const struct fs_config *cfg; /* borrowed from main */
    struct fs_hooks hooks;       /* zeroed when replication is off */
    bool has_hooks;              /* any per-file hook set */
    int backing_fd;              /* O_PATH|O_DIRECTORY of cfg->backing_dir */
    dev_t backing_dev;
    struct inode_table *inodes;
    struct workers *workers;
    struct fuse_session *se; /* set by main after fuse_session_new() */
    /* The flusher of writeback mode (fs/flusher.c); NULL when off. */
    struct flusher *flusher;
    /* The child doing the daemon's own I/O on the mount (fs/mounthelper.c): warm-up reads of
     * -wal files in write-through mode, the flusher's syncs in writeback mode. NULL if none. */
    struct mounthelper *mh;
    /* Open files still known to the daemon (released at shutdown if the kernel never sent
     * RELEASE, e.g. after a signal). Guarded by files_mu. */
    pthread_mutex_t files_mu;
    struct fs_file *files;
    /* FUSE requests by opcode, counted by the session loop (MOUNT/.bottomless/stats). */
    struct fs_loop_stats stats;
    /* Read buffer of the session thread (reads never run on workers). */
    char *read_buf;
    size_t read_buf_size;
};

/* An open file or directory; fi->fh holds a pointer to it. */
struct fs_file {
    int fd;               /* backing fd (real open), -1 for the status file */
    void *hook_handle;    /* from hooks.file_open, NULL if none */
    struct fs_inode *inode;
    struct buf status;    /* status file content (status file only) */
    char *flush_path;     /* a -wal registered with the writeback flusher, or NULL */
    char *warm_path;      /* a -wal the app writes (write-through): warmed at WAL restarts */
    uint64_t unsynced;    /* bytes written through this handle since its last fsync (loop) */
    uint64_t wal_ahead;   /* warm_path: the backing -wal reaches this far (loop); 0: unknown */
    bool wal_sqlite;      /* warm_path: this handle wrote a SQLite WAL header (loop) */
    struct fs_file *prev; /* fs->files list, guarded by fs->files_mu */
    struct fs_file *next;
};

/* The lowlevel op table (fs/ops.c). */
extern const struct fuse_lowlevel_ops fs_ops;

struct fs *fs_new(const struct fs_config *cfg, const struct fs_hooks *hooks, struct err *err);
void fs_free(struct fs *fs);
/* Starts the worker threads (after the fork). */
int fs_start(struct fs *fs, struct err *err);
/* Stops and joins the worker threads (pending jobs run first). */
void fs_stop(struct fs *fs);
/* Frees the open files the kernel never released (hooks.release runs for each). Call after
 * the session ended and fs_stop(), before hooks.shutdown. */
void fs_release_all(struct fs *fs);
/* Open-file list (ops_file.c). */
void fs_files_add(struct fs *fs, struct fs_file *f);
void fs_files_remove(struct fs *fs, struct fs_file *f);
/* Closes f: hooks.release, flusher, fd, memory. */
void fs_file_free(struct fs *fs, struct fs_file *f);
/* hooks.inval_path implementation; arg is struct fs. */
int fs_inval_path(void *arg, const char *path);

/* hooks.replace_file implementation (ops_file.c); arg is struct fs. */
int fs_replace_file(void *arg, const char *path, const char *stash);

/* Helpers shared by the ops_*.c files. */
static inline struct fs *fs_of(fuse_req_t req)
{
    return (struct fs *)fuse_req_userdata(req);
}
static inline struct fs_file *fs_file_of(const struct fuse_file_info *fi)
{
    return (struct fs_file *)(uintptr_t)fi->fh;
}
/* Relative path of inode (plus "/name" when name != NULL) into out; "" for the root.
 * Returns 0 or a positive errno (ENAMETOOLONG, or the readlink failure). */
int fs_path_of(struct fs *fs, struct fs_inode *in, const char *name, char *out, size_t size);
/* True for names the mount refuses to create or touch in the root (the staging dir). */
bool fs_name_is_reserved(struct fs *fs, struct fs_inode *parent, const char *name);
/* Looks name up in parent and fills e (nlookup raised on success). Returns 0 or errno. */
int fs_do_lookup(struct fs *fs, struct fs_inode *parent, const char *name,
                 struct fuse_entry_param *e);
/* Sets the owner of a just-created entry to the caller (the daemon runs as root). */
int fs_chown_new(struct fs *fs, fuse_req_t req, struct fs_inode *parent, int fd,
                 const char *name, mode_t mode);
/* Fills st for inode (backing fstat, or the virtual/status attributes). */
int fs_stat_inode(struct fs *fs, struct fs_inode *in, struct stat *st);
/* [worker] Restores a virtual inode through hooks.materialise and makes it real (no-op for
 * real inodes). 0 or the errno for the app. */
int fs_materialise(struct fs *fs, struct fs_inode *in);
/* "/proc/self/fd/N" for an fd. */
void fs_proc_path(int fd, char *out, size_t size);
/* Whether a path (or a name) is a SQLite -wal's: it ends in "-wal". */
bool fs_path_is_wal(const char *path);

/* Handlers, by file. */
void fs_op_init(void *userdata, struct fuse_conn_info *conn);
void fs_op_destroy(void *userdata);
/* ops_entry.c */
void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                   struct fuse_file_info *fi);
void fs_op_readlink(fuse_req_t req, fuse_ino_t ino);
void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                  const char *newname, unsigned int flags);
void fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void fs_op_statfs(fuse_req_t req, fuse_ino_t ino);
/* ops_file.c */
void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                  struct fuse_file_info *fi);
void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                struct fuse_file_info *fi);
void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                 struct fuse_file_info *fi);
void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void fs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                     struct fuse_file_info *fi);
void fs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                 struct fuse_file_info *fi);
/* ops_dir.c */
void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info *fi);
void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi);
void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
/* ops_xattr.c */
void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                    size_t size, int flags);
void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

#endif
