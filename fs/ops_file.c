/* fs/ops_file.c - FUSE handlers for open files: open, create, read, write, flush, release,
 * fsync, fallocate, lseek, plus the virtual status file. Open files are real backing fds
 * (reopened from the inode's O_PATH fd via /proc/self/fd/N) with keep_cache and no direct_io;
 * fsync runs on a worker and replies from there. The write path is pwrite + hooks + reply. */
#include "fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/flusher.h"
#include "fs/mounthelper.h"

#define FS_WAL_SUFFIX "-wal"

bool fs_path_is_wal(const char *path)
{
    size_t n = strlen(path);
    size_t s = strlen(FS_WAL_SUFFIX);
    return n > s && strcmp(path + n - s, FS_WAL_SUFFIX) == 0;
}

/* Whether the request is the daemon's own: all its I/O on the mount runs in the mount helper
 * child (fs/mounthelper.h), never in a thread of the daemon. */
static bool fs_req_from_self(struct fs *fs, fuse_req_t req)
{
    pid_t pid = fuse_req_ctx(req)->pid;
    return pid == getpid() || pid == mounthelper_pid(fs->mh);
}

/* Flags for reopening a regular file of ours: the app's flags minus creation flags; O_TRUNC is
 * kept only when no hook needs to see it; write-only opens become read-write when the
 * replicator or the writeback cache needs to read. */
static int fs_open_flags(struct fs *fs, int flags, bool is_reg, bool keep_trunc)
{
    /* O_DIRECT: the kernel already bypasses its cache for such opens; our buffers are not
     * aligned for a direct backing fd. */
    int o = flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW | O_DIRECT);

    if (!keep_trunc)
        o &= ~O_TRUNC;
    if (is_reg && (fs->has_hooks || fs->cfg->writeback) && (o & O_ACCMODE) == O_WRONLY)
        o = (o & ~O_ACCMODE) | O_RDWR;
    if (fs->cfg->writeback)
        o &= ~O_APPEND; /* the kernel handles O_APPEND with the writeback cache */
    return o | O_CLOEXEC;
}

void fs_files_add(struct fs *fs, struct fs_file *f)
{
    pthread_mutex_lock(&fs->files_mu);
    f->prev = NULL;
    f->next = fs->files;
    if (fs->files != NULL)
        fs->files->prev = f;
    fs->files = f;
    pthread_mutex_unlock(&fs->files_mu);
}

void fs_files_remove(struct fs *fs, struct fs_file *f)
{
    pthread_mutex_lock(&fs->files_mu);
    if (f->prev != NULL)
        f->prev->next = f->next;
    else if (fs->files == f)
        fs->files = f->next;
    if (f->next != NULL)
        f->next->prev = f->prev;
    f->prev = f->next = NULL;
    pthread_mutex_unlock(&fs->files_mu);
}

void fs_release_all(struct fs *fs)
{
    size_t n = 0;

    for (;;) {
        pthread_mutex_lock(&fs->files_mu);
        struct fs_file *f = fs->files;
        pthread_mutex_unlock(&fs->files_mu);
        if (f == NULL)
            break;
        fs_file_free(fs, f);
        n++;
    }
    if (n != 0)
        LOG_INFO("fs: released files=%zu the kernel had not closed at shutdown", n);
}

void fs_file_free(struct fs *fs, struct fs_file *f)
{
    if (f == NULL)
        return;
    fs_files_remove(fs, f);
    if (f->hook_handle != NULL && fs->hooks.release != NULL)
        fs->hooks.release(fs->hooks.arg, f->hook_handle);
    if (f->flush_path != NULL) {
        flusher_remove(fs->flusher, f->flush_path);
        free(f->flush_path);
    }
    free(f->warm_path);
    if (f->fd >= 0 && close(f->fd) != 0)
        LOG_WARN("fs: close failed errno=%s", errno_name(errno));
    buf_free(&f->status);
    free(f);
}

/* After the backing open: hooks, O_TRUNC, flusher registration. Takes ownership of fd. */
static struct fs_file *fs_file_new(fuse_req_t req, struct fs *fs, struct fs_inode *in, int fd,
                                   int flags, bool trunc_pending, int *rc_out)
{
    struct fs_file *f = calloc(1, sizeof(*f));
    char path[FS_PATH_MAX];
    bool have_path = false;

    *rc_out = 0;
    if (f == NULL) {
        close(fd);
        *rc_out = ENOMEM;
        return NULL;
    }
    f->fd = fd;
    f->inode = in;
    fs_files_add(fs, f);
    if (fs->has_hooks || fs->mh != NULL)
        have_path = fs_path_of(fs, in, NULL, path, sizeof(path)) == 0;
    if (have_path && fs->hooks.file_open != NULL)
        f->hook_handle = fs->hooks.file_open(fs->hooks.arg, path, fd, flags);
    if (trunc_pending) {
        int rc = 0;
        if (have_path && fs->hooks.truncate_before != NULL)
            rc = fs->hooks.truncate_before(fs->hooks.arg, f->hook_handle, path, 0);
        if (rc == 0) { /* else refused (staging disk full): no truncate, no after hook */
            do {
                rc = ftruncate(fd, 0);
            } while (rc != 0 && errno == EINTR);
            rc = rc != 0 ? errno : 0;
            if (have_path && fs->hooks.truncate_after != NULL)
                fs->hooks.truncate_after(fs->hooks.arg, f->hook_handle, path, 0, rc);
        }
        if (rc != 0) {
            fs_file_free(fs, f);
            *rc_out = rc;
            return NULL;
        }
    }
    if (have_path && fs->mh != NULL && fs->flusher == NULL && (flags & O_ACCMODE) != O_RDONLY &&
        fs_path_is_wal(path) && !fs_req_from_self(fs, req))
        f->warm_path = strdup(path); /* NULL on ENOMEM: only slower */
    if (have_path && fs->flusher != NULL && fs_path_is_wal(path) &&
        !fs_req_from_self(fs, req)) {
        f->flush_path = strdup(path);
        if (f->flush_path != NULL)
            flusher_add(fs->flusher, path);
    }
    return f;
}

static void fs_open_real(fuse_req_t req, struct fs *fs, struct fs_inode *in,
                         struct fuse_file_info *fi)
{
    char proc[64];
    bool is_reg = in->type == S_IFREG;
    bool trunc_pending = (fi->flags & O_TRUNC) && fs->has_hooks;
    int fd;
    int rc;

    fs_proc_path(in->fd, proc, sizeof(proc));
    do {
        fd = open(proc, fs_open_flags(fs, fi->flags, is_reg, !trunc_pending));
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    struct fs_file *f = fs_file_new(req, fs, in, fd, fi->flags, trunc_pending, &rc);
    if (f == NULL) {
        fuse_reply_err(req, rc);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)f;
    fi->keep_cache = 1;
    fi->direct_io = 0;
    /* The daemon's own opens (fs/mounthelper.h) need no FLUSH on close: one fewer request. */
    fi->noflush = fs_req_from_self(fs, req);
    if (fuse_reply_open(req, fi) != 0)
        fs_file_free(fs, f); /* interrupted: the kernel will not release it */
}

static void fs_open_status(fuse_req_t req, struct fs *fs, struct fs_inode *in,
                           struct fuse_file_info *fi)
{
    struct fs_file *f;
    int rc = 0;

    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
        fuse_reply_err(req, EACCES);
        return;
    }
    f = calloc(1, sizeof(*f));
    if (f == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    f->fd = -1;
    f->inode = in;
    fs_files_add(fs, f);
    buf_init(&f->status, FS_STATUS_MAX_BYTES);
    if (in == inode_stats_file(fs->inodes))
        rc = fs_loop_stats_render(&fs->stats, fs->cfg->spin_us, &f->status);
    else if (fs->hooks.render_status != NULL)
        rc = fs->hooks.render_status(fs->hooks.arg, &f->status);
    else
        rc = buf_appendf(&f->status, "{\"replication\":\"off\",\"databases\":[]}\n");
    if (rc != 0) {
        fs_file_free(fs, f);
        fuse_reply_err(req, rc);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)f;
    fi->direct_io = 1; /* size unknown to the kernel: always ask us */
    fi->keep_cache = 0;
    if (fuse_reply_open(req, fi) != 0)
        fs_file_free(fs, f);
}

struct open_job {
    fuse_req_t req;
    struct fs_inode *in;
    struct fuse_file_info fi;
};

static void fs_open_job(void *arg)
{
    struct open_job *j = arg;
    struct fs *fs = fs_of(j->req);
    int rc = fs_materialise(fs, j->in);

    if (rc != 0)
        fuse_reply_err(j->req, rc);
    else
        fs_open_real(j->req, fs, j->in, &j->fi);
    free(j);
}

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct fs_inode *in = inode_of(fs->inodes, ino);

    switch (__atomic_load_n(&in->kind, __ATOMIC_ACQUIRE)) {
    case FS_INODE_REAL:
        fs_open_real(req, fs, in, fi);
        return;
    case FS_INODE_STATUS_FILE:
        fs_open_status(req, fs, in, fi);
        return;
    case FS_INODE_STATUS_DIR:
        fuse_reply_err(req, EISDIR);
        return;
    case FS_INODE_VIRTUAL: {
        struct open_job *j = malloc(sizeof(*j));
        if (j == NULL) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        *j = (struct open_job){.req = req, .in = in, .fi = *fi};
        int rc = workers_submit(fs->workers, fs_open_job, j);
        if (rc != 0) {
            free(j);
            fuse_reply_err(req, rc);
        }
        return;
    }
    }
}

static void fs_do_create(fuse_req_t req, struct fs *fs, struct fs_inode *parent, const char *name,
                         mode_t mode, struct fuse_file_info *fi)
{
    struct fuse_entry_param e;
    bool trunc_pending = (fi->flags & O_TRUNC) && fs->has_hooks;
    int oflags = fs_open_flags(fs, fi->flags, true, !trunc_pending);
    bool created = true;
    int fd;
    int rc;

    mode = (mode & ~fuse_req_ctx(req)->umask) & 07777;
    do {
        fd = openat(parent->fd, name, oflags | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno == EEXIST && !(fi->flags & O_EXCL)) {
        created = false;
        do {
            fd = openat(parent->fd, name, oflags | O_NOFOLLOW);
        } while (fd < 0 && errno == EINTR);
    }
    if (fd < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    if (created) {
        rc = fs_chown_new(fs, req, parent, fd, name, S_IFREG | mode);
        if (rc != 0) {
            close(fd);
            unlinkat(parent->fd, name, 0);
            fuse_reply_err(req, rc);
            return;
        }
    }
    rc = fs_do_lookup(fs, parent, name, &e);
    if (rc != 0) {
        close(fd);
        fuse_reply_err(req, rc);
        return;
    }
    struct fs_inode *in = inode_of(fs->inodes, e.ino);
    struct fs_file *f = fs_file_new(req, fs, in, fd, fi->flags | O_CREAT, trunc_pending, &rc);
    if (f == NULL) {
        inode_unref(fs->inodes, in, 1);
        fuse_reply_err(req, rc);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)f;
    fi->keep_cache = 1;
    fi->direct_io = 0;
    if (fuse_reply_create(req, &e, fi) != 0) {
        fs_file_free(fs, f);
        inode_unref(fs->inodes, in, 1);
    }
}

struct create_job {
    fuse_req_t req;
    struct fs_inode *parent;
    mode_t mode;
    struct fuse_file_info fi;
    char path[FS_PATH_MAX];
    char name[];
};

static void fs_create_job(void *arg)
{
    struct create_job *j = arg;
    struct fs *fs = fs_of(j->req);
    int rc = fs->hooks.materialise(fs->hooks.arg, j->path);

    if (rc != 0)
        fuse_reply_err(j->req, rc);
    else
        fs_do_create(j->req, fs, j->parent, j->name, j->mode, &j->fi);
    free(j);
}

void fs_op_create(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode,
                  struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct fs_inode *parent = inode_of(fs->inodes, parent_ino);
    char path[FS_PATH_MAX];
    struct stat vst;

    if (parent->kind == FS_INODE_STATUS_DIR || fs_name_is_reserved(fs, parent, name)) {
        fuse_reply_err(req, EPERM);
        return;
    }
    if (parent->kind != FS_INODE_REAL) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    /* A bucket-only database of that name: restore it first (or refuse O_EXCL). */
    if (fs->hooks.lookup_virtual != NULL && fs->hooks.materialise != NULL &&
        faccessat(parent->fd, name, F_OK, AT_SYMLINK_NOFOLLOW) != 0 &&
        fs_path_of(fs, parent, name, path, sizeof(path)) == 0 &&
        fs->hooks.lookup_virtual(fs->hooks.arg, path, &vst) == 0) {
        if (fi->flags & O_EXCL) {
            fuse_reply_err(req, EEXIST);
            return;
        }
        size_t n = strlen(name);
        struct create_job *j = calloc(1, sizeof(*j) + n + 1);
        if (j == NULL) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        j->req = req;
        j->parent = parent;
        j->mode = mode;
        j->fi = *fi;
        memcpy(j->path, path, sizeof(path));
        memcpy(j->name, name, n + 1);
        int rc = workers_submit(fs->workers, fs_create_job, j);
        if (rc != 0) {
            free(j);
            fuse_reply_err(req, rc);
        }
        return;
    }
    fs_do_create(req, fs, parent, name, mode, fi);
}

void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct fs_file *f = fs_file_of(fi);

    (void)ino;
    if (f->fd < 0) { /* the status file */
        size_t len = f->status.len;
        size_t start = off < 0 ? len : (size_t)off < len ? (size_t)off : len;
        size_t n = len - start < size ? len - start : size;
        fuse_reply_buf(req, (const char *)f->status.data + start, n);
        return;
    }
    if (size > fs->read_buf_size) {
        char *nb = realloc(fs->read_buf, size);
        if (nb == NULL) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        fs->read_buf = nb;
        fs->read_buf_size = size;
    }
    ssize_t n;
    do {
        n = pread(f->fd, fs->read_buf, size, off);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    fuse_reply_buf(req, fs->read_buf, (size_t)n);
}

/* Writeback mode: the kernel writes whole pages, so a WRITE often starts with bytes the backing
 * file already holds (e.g. the committed tail of a -wal in the page the new frames continue).
 * The before-write hook (which stages committed -wal frames that a write would overwrite, and
 * copies db pages for a snapshot) needs only the bytes that change: returns the length of the
 * unchanged prefix within the write's first page (0 when unknown). */
static size_t fs_unchanged_prefix(int fd, const char *buf, size_t size, off_t off)
{
    char old[4096];
    size_t n = sizeof(old) - (size_t)(off % (off_t)sizeof(old));
    ssize_t got;

    if (n > size)
        n = size;
    do {
        got = pread(fd, old, n, off);
    } while (got < 0 && errno == EINTR);
    if (got <= 0)
        return 0;
    if (memcmp(old, buf, (size_t)got) == 0)
        return (size_t)got;
    size_t i = 0;
    while (i < (size_t)got && old[i] == buf[i])
        i++;
    return i;
}

/* A -wal the app appends to is kept extended this far past its writes, in steps of half. */
#define FS_WAL_AHEAD (2u << 20)

/* Write-through mode: cache pages of a growing -wal are never up to date (only reads make them
 * so), and the kernel ends a WRITE at a page it fills only partly unless it is: a frame then
 * costs 3 WRITEs instead of 2, and a checkpoint reads every frame back through FUSE, about 5
 * requests per page in a bulk load (3 with this). So when SQLite's writes come within half of
 * FS_WAL_AHEAD of the backing -wal's end, the daemon extends the file (sparse: no disk space;
 * zeros to SQLite, as after its own SQLITE_FCNTL_CHUNK_SIZE preallocation: recovery stops at
 * the first frame whose salts do not match), tells the kernel the new size, and the mount
 * helper reads the new range, so the app's next frames land on up-to-date pages.
 * The size goes to the kernel as a FUSE_NOTIFY_STORE of the file's last byte (a zero, as in
 * the backing file): the kernel takes a store's end as the new size, while it drops a GETATTR
 * reply whenever a WRITE completed meanwhile, which is always the case here. The store locks
 * that one page on the session thread, which must never wait for a page whose lock is held
 * by a task waiting for the session thread: a write into that page in flight, or a read of
 * it. The page lies at least 1 MiB past both the write being served and the old end of the
 * file. Writes: SQLite has one WAL writer at a time (the WAL write lock), and it is waiting
 * for this reply, hence only for a handle that wrote a SQLite WAL header (no other program's
 * writes to a file named *-wal get here). Reads: nothing reads past the old end, and
 * readahead (128 KiB on FUSE unless raised in sysfs) does not reach 1 MiB past a read. The
 * page is new (past the old end nothing is cached) and the store does not make it up to
 * date, so the zero is never read as data. */
static void fs_wal_grow(struct fs *fs, struct fs_file *f, fuse_ino_t ino, uint64_t end)
{
    static const char zero;
    struct stat st;

    if (end + FS_WAL_AHEAD / 2 <= f->wal_ahead || fs->se == NULL || fstat(f->fd, &st) != 0)
        return;
    uint64_t size = (uint64_t)st.st_size;
    if (size >= end + FS_WAL_AHEAD / 2) {
        f->wal_ahead = size;
        return;
    }
    uint64_t base = end > size ? end : size;
    uint64_t want = (base + FS_WAL_AHEAD) & ~(uint64_t)(FS_WAL_AHEAD / 2 - 1); /* >= base + 1M */
    int rc;
    do {
        rc = ftruncate(f->fd, (off_t)want);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) { /* e.g. EFBIG: the app's own writes will meet the limit, not ours */
        f->wal_ahead = UINT64_MAX;
        return;
    }
    f->wal_ahead = want;
    struct fuse_bufvec last = FUSE_BUFVEC_INIT(1);
    last.buf[0].mem = (void *)&zero;
    if (fuse_lowlevel_notify_store(fs->se, ino, (off_t)want - 1, &last, FUSE_BUF_NO_SPLICE) != 0)
        return; /* the kernel keeps the old size: reads of the new range would stop there */
    mounthelper_submit_range(fs->mh, f->warm_path, size & ~(uint64_t)4095, want);
}

/* Does buf (written at offset 0) start with a SQLite WAL header's magic number? */
static bool fs_is_wal_header(const char *buf, size_t size)
{
    static const unsigned char le[4] = {0x37, 0x7f, 0x06, 0x82}, be[4] = {0x37, 0x7f, 0x06, 0x83};
    return size >= 32 && (memcmp(buf, le, 4) == 0 || memcmp(buf, be, 4) == 0);
}

void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                 struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct fs_file *f = fs_file_of(fi);
    void *h = f->hook_handle;
    ssize_t n;

    if (f->fd < 0) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (h != NULL && fs->hooks.write_before != NULL) {
        size_t same = fs->cfg->writeback ? fs_unchanged_prefix(f->fd, buf, size, off) : 0;
        int rc = same < size ? fs->hooks.write_before(fs->hooks.arg, h, (uint64_t)off + same,
                                                      size - same)
                             : 0;
        if (rc != 0) { /* refused (staging disk full): the app sees it like a full disk */
            fuse_reply_err(req, rc);
            return;
        }
    }
    do {
        n = pwrite(f->fd, buf, size, off);
    } while (n < 0 && errno == EINTR);
    int saved = n < 0 ? errno : 0;
    if (h != NULL && fs->hooks.write_after != NULL)
        fs->hooks.write_after(fs->hooks.arg, h, (uint64_t)off, buf, size, n < 0 ? -saved : n);
    if (n < 0) {
        fuse_reply_err(req, saved);
        return;
    }
    f->unsynced += (uint64_t)n;
    fuse_reply_write(req, (size_t)n);
    /* SQLite rewrites the WAL header at offset 0 when it restarts the WAL after a checkpoint:
     * the frames that follow go to cache pages that are not up to date unless read: the
     * mount helper reads the -wal once so that each frame write is one FUSE WRITE, not two (a
     * frame straddles two pages, and the kernel ends a WRITE at a partly written page that is
     * not up to date). Pages already cached cost it no request. */
    if (f->warm_path != NULL) {
        if (off == 0) { /* a WAL restart, or a new -wal: another handle may have cut it */
            mounthelper_submit(fs->mh, 'R', f->warm_path);
            f->wal_ahead = 0;
            f->wal_sqlite = fs_is_wal_header(buf, (size_t)n);
        }
        if (f->wal_sqlite)
            fs_wal_grow(fs, f, ino, (uint64_t)off + (uint64_t)n);
    }
}

void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0); /* locks are the kernel's; data is already in the backing file */
}

void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    fs_file_free(fs_of(req), fs_file_of(fi));
    fuse_reply_err(req, 0);
}

/* The largest fsync run on the loop thread: bytes written through the handle since its last
 * fsync (a few frames of one transaction). */
#define FS_FSYNC_INLINE_MAX (256u * 1024u)

struct fsync_job {
    fuse_req_t req;
    struct fs_file *f;
    bool datasync;
};

static void fs_fsync_job(void *arg)
{
    struct fsync_job *j = arg;
    struct fs *fs = fs_of(j->req);
    int rc;

    do {
        rc = j->datasync ? fdatasync(j->f->fd) : fsync(j->f->fd);
    } while (rc != 0 && errno == EINTR);
    rc = rc != 0 ? errno : 0;
    if (rc == 0 && j->f->hook_handle != NULL && fs->hooks.fsync != NULL)
        rc = fs->hooks.fsync(fs->hooks.arg, j->f->hook_handle, j->datasync);
    fuse_reply_err(j->req, rc);
    free(j);
}

void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct fs_file *f = fs_file_of(fi);

    (void)ino;
    if (f->fd < 0) {
        fuse_reply_err(req, 0);
        return;
    }
    struct fsync_job *j = malloc(sizeof(*j));
    if (j == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    *j = (struct fsync_job){.req = req, .f = f, .datasync = datasync != 0};
    /* A small fsync (SQLite's per-commit -wal sync at synchronous=FULL) runs here: handing it
     * to a worker and back costs two thread wake-ups, about 40 us on the 2-vCPU VM measured,
     * a quarter of the fdatasync itself (bench: FULL inserts 0.42 -> 0.46 of native). Large
     * ones (checkpoints, bulk loads) and durable ones (they wait for S3) go to a worker so the
     * loop keeps serving other requests meanwhile. */
    bool small = f->unsynced <= FS_FSYNC_INLINE_MAX;
    f->unsynced = 0;
    if (small && !fs->cfg->durable) {
        fs_fsync_job(j);
        return;
    }
    int rc = workers_submit(fs->workers, fs_fsync_job, j);
    if (rc != 0) { /* no workers (shutting down): do it here */
        fs_fsync_job(j);
    }
}

void fs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                     struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct fs_file *f = fs_file_of(fi);
    void *h = f->hook_handle;
    int rc;

    (void)ino;
    if (f->fd < 0) {
        fuse_reply_err(req, EBADF);
        return;
    }
    if (h != NULL && fs->hooks.fallocate_before != NULL)
        fs->hooks.fallocate_before(fs->hooks.arg, h, mode, (uint64_t)offset, (uint64_t)length);
    do {
        rc = fallocate(f->fd, mode, offset, length);
    } while (rc != 0 && errno == EINTR);
    rc = rc != 0 ? errno : 0;
    if (h != NULL && fs->hooks.fallocate_after != NULL)
        fs->hooks.fallocate_after(fs->hooks.arg, h, mode, (uint64_t)offset, (uint64_t)length, rc);
    fuse_reply_err(req, rc);
}

void fs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
    struct fs_file *f = fs_file_of(fi);

    (void)ino;
    if (f->fd < 0) {
        fuse_reply_err(req, ENOSYS);
        return;
    }
    off_t r = lseek(f->fd, off, whence);
    if (r < 0)
        fuse_reply_err(req, errno);
    else
        fuse_reply_lseek(req, r);
}

/* hooks' replace_file (fs/hooks.h). The order keeps every state a crash can leave usable:
 * the new file and a descriptor of it for each open handle exist before anything is renamed,
 * so past the first rename nothing can fail but a rename back; between the two renames path
 * is simply absent (a SQLite -wal replaced here holds nothing the database lacks). */
int fs_replace_file(void *arg, const char *path, const char *stash)
{
    struct fs *fs = arg;
    char tmp[FS_PATH_MAX];
    struct stat st, nst;
    int rc = 0, nfd = -1, pfd = -1, *fds = NULL;
    size_t n = 0, k = 0;

    if (snprintf(tmp, sizeof(tmp), "%s.new.tmp", stash) >= (int)sizeof(tmp))
        return ENAMETOOLONG;
    if (fstatat(fs->backing_fd, path, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno;
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1) /* another name would keep the old file */
        return EINVAL;
    struct fs_inode *in = inode_find(fs->inodes, st.st_dev, st.st_ino);
    nfd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, st.st_mode & 07777);
    if (nfd < 0)
        return errno;
    if (fchown(nfd, st.st_uid, st.st_gid) != 0 || fchmod(nfd, st.st_mode & 07777) != 0 ||
        ftruncate(nfd, st.st_size) != 0 || fstat(nfd, &nst) != 0) {
        rc = errno;
        goto fail;
    }
    pthread_mutex_lock(&fs->files_mu);
    for (struct fs_file *f = fs->files; f != NULL; f = f->next)
        n += in != NULL && f->inode == in && f->fd >= 0;
    fds = calloc(n ? n : 1, sizeof(*fds));
    for (struct fs_file *f = fs->files; fds != NULL && f != NULL && k < n; f = f->next) {
        if (in == NULL || f->inode != in || f->fd < 0)
            continue;
        int fl = fcntl(f->fd, F_GETFL);
        int o = fl < 0 ? O_RDWR : fl & (O_ACCMODE | O_APPEND | O_NOATIME | O_DSYNC | O_SYNC);
        fds[k] = open(tmp, o | O_CLOEXEC);
        if (fds[k] < 0) {
            rc = errno;
            break;
        }
        k++;
    }
    if (fds == NULL)
        rc = ENOMEM;
    if (rc == 0 && in != NULL && (pfd = open(tmp, O_PATH | O_CLOEXEC)) < 0)
        rc = errno;
    if (rc == 0 && renameat(fs->backing_fd, path, AT_FDCWD, stash) != 0)
        rc = errno;
    if (rc == 0 && renameat(AT_FDCWD, tmp, fs->backing_fd, path) != 0) {
        rc = errno;
        if (renameat(AT_FDCWD, stash, fs->backing_fd, path) != 0)
            LOG_ERR("fs: replacing %s failed and it is now at %s (errno=%s): move it back", path,
                    stash, errno_name(errno));
    }
    if (rc == 0) {
        /* dup2 keeps each handle's fd number: a worker may be using it at this moment */
        k = 0;
        for (struct fs_file *f = fs->files; f != NULL && k < n; f = f->next) {
            if (f->inode == in && f->fd >= 0 && dup2(fds[k++], f->fd) < 0)
                LOG_ERR("fs: switching a handle of %s to its new file failed errno=%s", path,
                        errno_name(errno));
        }
    }
    pthread_mutex_unlock(&fs->files_mu);
    for (size_t i = 0; i < k && fds != NULL; i++)
        close(fds[i]);
    free(fds);
    if (rc != 0)
        goto fail;
    close(nfd);
    if (in != NULL)
        inode_rekey(fs->inodes, in, pfd, &nst);
    return 0;
fail:
    if (pfd >= 0)
        close(pfd);
    close(nfd);
    unlink(tmp);
    return rc;
}
