/* fs/inode.h - the inode table: FUSE node ids <-> backing files.
 * What:    each backing file the kernel knows about is one struct fs_inode, found by
 *          (st_dev, st_ino) in a hash table, holding an O_PATH fd and the kernel's lookup count
 *          (raised by every entry reply, lowered by forget). The FUSE node id is the pointer;
 *          the root is FUSE_ROOT_ID and lives as long as the table. Special inodes (the root,
 *          the virtual ".bottomless" directory and its "status" and "stats" files) are never freed;
 * virtual inodes (bucket-only databases, fd -1) are keyed by their relative path. Owns:    the
 * inodes and their fds; inode_table_new() -> inode_table_free(). Threads: all functions are safe
 * from any thread (one mutex inside; never held across I/O). An inode stays valid while the kernel
 * holds a lookup on it, i.e. during any request that names it. Errors:  NULL / ENOMEM. */
#ifndef BFS_FS_INODE_H
#define BFS_FS_INODE_H

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

enum fs_inode_kind {
    FS_INODE_REAL,        /* a backing file or directory (fd is O_PATH) */
    FS_INODE_VIRTUAL,     /* a bucket-only database not yet restored (fd -1, vpath) */
    FS_INODE_STATUS_DIR,  /* MOUNTPOINT/.bottomless */
    FS_INODE_STATUS_FILE, /* MOUNTPOINT/.bottomless/status and .../stats (see inode_stats_file) */
};

struct fs_inode {
    enum fs_inode_kind kind;
    int fd;          /* O_PATH fd (REAL), -1 otherwise; owned */
    dev_t dev;       /* key (REAL) */
    ino_t ino;       /* key (REAL) */
    mode_t type;     /* S_IFMT bits at lookup */
    char *vpath;     /* VIRTUAL: relative path; owned */
    struct stat vst; /* VIRTUAL: attributes from the hook */
    /* Private to inode.c (guarded by the table mutex). */
    uint64_t nlookup;
    struct fs_inode *next;
};

struct inode_table;

/* Takes ownership of root_fd (O_PATH of the backing dir). */
struct inode_table *inode_table_new(int root_fd, const struct stat *root_st);
void inode_table_free(struct inode_table *t);

struct fs_inode *inode_root(struct inode_table *t);
struct fs_inode *inode_status_dir(struct inode_table *t);
struct fs_inode *inode_status_file(struct inode_table *t);
/* MOUNTPOINT/.bottomless/stats: kind FS_INODE_STATUS_FILE too, told apart by its address. */
struct fs_inode *inode_stats_file(struct inode_table *t);

/* Node id <-> inode. */
struct fs_inode *inode_of(struct inode_table *t, fuse_ino_t ino);
fuse_ino_t inode_id(struct inode_table *t, struct fs_inode *in);

/* Finds the inode of (st->st_dev, st->st_ino) or inserts a new one owning fd; raises its lookup
 * count by one. Takes ownership of fd in every case (closed when an inode already exists or on
 * failure). NULL on ENOMEM. */
struct fs_inode *inode_get(struct inode_table *t, int fd, const struct stat *st);
/* Same for a virtual entry keyed by its relative path (copied). */
struct fs_inode *inode_get_virtual(struct inode_table *t, const char *vpath, const struct stat *st);
/* The virtual inode of vpath with its lookup count raised by one (drop it with inode_unref),
 * or NULL when the kernel holds none. */
struct fs_inode *inode_ref_virtual(struct inode_table *t, const char *vpath);
/* Turns a virtual inode into a real one after its file was restored: takes ownership of fd
 * (O_PATH) and enters the inode under (st_dev, st_ino). The node id does not change. */
void inode_promote(struct inode_table *t, struct fs_inode *in, int fd, const struct stat *st);
/* The backing file of the real inode in was replaced by another at the same path (see
 * fs_replace_file): in now stands for (st_dev, st_ino) of st, and its fd for fd's file (fd is
 * consumed; in->fd keeps its number). The node id does not change. */
void inode_rekey(struct inode_table *t, struct fs_inode *in, int fd, const struct stat *st);
/* Raises the lookup count of an existing inode (for special inodes: a no-op). */
void inode_ref(struct inode_table *t, struct fs_inode *in);
/* Lowers the lookup count by n; frees the inode (closing its fd) at zero. */
void inode_unref(struct inode_table *t, struct fs_inode *in, uint64_t n);
/* Looks up (dev, ino) without changing counts; NULL if the kernel does not know it. The result
 * may be freed by a concurrent forget: use only for notifications. */
struct fs_inode *inode_find(struct inode_table *t, dev_t dev, ino_t ino);
/* Number of inodes in the table (tests, stats). */
size_t inode_count(struct inode_table *t);

#endif
