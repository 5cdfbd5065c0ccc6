/* fs/ops.c - the FUSE low-level operation table, init/destroy, the struct fs lifecycle and the
 * helpers the handlers share (paths, lookup, ownership of new entries, attributes).
 * Settings (docs: /work/shared/reference/fuse-performance.md and issue 6): no getlk/setlk/flock
 * (the kernel keeps fcntl/flock locks itself), no write_buf (so no splice), AUTO_INVAL_DATA and
 * the splice caps cleared in init, keep_cache on open, entry/attr timeouts 86400 s (the daemon
 * is the only writer of BACKING_DIR), writeback cache only with -o writeback. */
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

const struct fuse_lowlevel_ops fs_ops = {
    .init = fs_op_init,
    .destroy = fs_op_destroy,
    .lookup = fs_op_lookup,
    .forget = fs_op_forget,
    .forget_multi = fs_op_forget_multi,
    .getattr = fs_op_getattr,
    .setattr = fs_op_setattr,
    .readlink = fs_op_readlink,
    .mknod = fs_op_mknod,
    .mkdir = fs_op_mkdir,
    .unlink = fs_op_unlink,
    .rmdir = fs_op_rmdir,
    .symlink = fs_op_symlink,
    .rename = fs_op_rename,
    .link = fs_op_link,
    .open = fs_op_open,
    .read = fs_op_read,
    .write = fs_op_write,
    .flush = fs_op_flush,
    .release = fs_op_release,
    .fsync = fs_op_fsync,
    .opendir = fs_op_opendir,
    .readdir = fs_op_readdir,
    .releasedir = fs_op_releasedir,
    .fsyncdir = fs_op_fsyncdir,
    .statfs = fs_op_statfs,
    .setxattr = fs_op_setxattr,
    .getxattr = fs_op_getxattr,
    .listxattr = fs_op_listxattr,
    .removexattr = fs_op_removexattr,
    .create = fs_op_create,
    .fallocate = fs_op_fallocate,
    .readdirplus = fs_op_readdirplus,
    .lseek = fs_op_lseek,
};

void fs_op_init(void *userdata, struct fuse_conn_info *conn)
{
    struct fs *fs = userdata;

    conn->want &= ~(unsigned)(FUSE_CAP_AUTO_INVAL_DATA | FUSE_CAP_SPLICE_READ |
                              FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
    conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
    if (fs->cfg->writeback) {
        if (conn->capable & FUSE_CAP_WRITEBACK_CACHE)
            conn->want |= FUSE_CAP_WRITEBACK_CACHE;
        else
            LOG_WARN("fs: kernel has no writeback cache, writeback mode off");
    }
    if (conn->capable & FUSE_CAP_EXPLICIT_INVAL_DATA)
        conn->want |= FUSE_CAP_EXPLICIT_INVAL_DATA;
    LOG_INFO("fs: init proto=%u.%u want=0x%x writeback=%d", conn->proto_major, conn->proto_minor,
             conn->want, (conn->want & FUSE_CAP_WRITEBACK_CACHE) != 0);
}

void fs_op_destroy(void *userdata)
{
    (void)userdata;
}

void fs_proc_path(int fd, char *out, size_t size)
{
    snprintf(out, size, "/proc/self/fd/%d", fd);
}

struct fs *fs_new(const struct fs_config *cfg, const struct fs_hooks *hooks, struct err *err)
{
    struct fs *fs = calloc(1, sizeof(*fs));
    struct stat st;
    int fd = -1;

    if (fs == NULL) {
        ERR(err, ENOMEM, "fs: out of memory");
        return NULL;
    }
    fs->cfg = cfg;
    fs->backing_fd = -1;
    pthread_mutex_init(&fs->files_mu, NULL);
    if (hooks != NULL)
        fs->hooks = *hooks;
    fs->has_hooks = fs->hooks.file_open != NULL || fs->hooks.unlinked != NULL ||
                    fs->hooks.renamed != NULL || fs->hooks.truncate_before != NULL ||
                    fs->hooks.truncate_after != NULL;
    fd = open(cfg->backing_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        ERR(err, errno, "fs: cannot open backing directory %s: %s", cfg->backing_dir,
            errno_name(errno));
        goto fail;
    }
    fs->backing_fd = fd;
    fs->backing_dev = st.st_dev;
    fd = fcntl(fs->backing_fd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) {
        ERR(err, errno, "fs: dup: %s", errno_name(errno));
        goto fail;
    }
    fs->inodes = inode_table_new(fd, &st); /* owns fd */
    fs->workers = workers_new(cfg->n_workers);
    if (fs->inodes == NULL || fs->workers == NULL) {
        ERR(err, ENOMEM, "fs: out of memory");
        goto fail;
    }
    return fs;
fail:
    fs_free(fs);
    return NULL;
}

void fs_free(struct fs *fs)
{
    if (fs == NULL)
        return;
    flusher_free(fs->flusher);
    mounthelper_free(fs->mh);
    workers_free(fs->workers);
    fs_release_all(fs);
    pthread_mutex_destroy(&fs->files_mu);
    inode_table_free(fs->inodes);
    free(fs->read_buf);
    if (fs->backing_fd >= 0)
        close(fs->backing_fd);
    free(fs);
}

int fs_start(struct fs *fs, struct err *err)
{
    int rc = 0;

    /* first: the fork copies fewer threads */
    if (fs->cfg->writeback || !fs->cfg->nowalcache) {
        fs->mh = mounthelper_new(fs->cfg->mountpoint, !fs->cfg->foreground, err);
        if (fs->mh == NULL)
            return err != NULL && err->code != 0 ? err->code : ENOMEM;
    }
    rc = workers_start(fs->workers, err);
    if (rc == 0 && fs->cfg->writeback) {
        fs->flusher = flusher_new(fs->mh, fs->cfg->writeback_ms, err);
        if (fs->flusher == NULL)
            rc = err != NULL && err->code != 0 ? err->code : ENOMEM;
    }
    return rc;
}

void fs_stop(struct fs *fs)
{
    flusher_free(fs->flusher);
    fs->flusher = NULL;
    mounthelper_free(fs->mh);
    fs->mh = NULL;
    workers_stop(fs->workers);
}

int fs_path_of(struct fs *fs, struct fs_inode *in, const char *name, char *out, size_t size)
{
    char proc[64];
    char abs[FS_PATH_MAX];
    const char *rel = "";
    int n;

    if (in->kind == FS_INODE_VIRTUAL) {
        rel = in->vpath;
    } else if (in->kind != FS_INODE_REAL) {
        return EINVAL;
    } else if (in != inode_root(fs->inodes)) {
        fs_proc_path(in->fd, proc, sizeof(proc));
        ssize_t len = readlink(proc, abs, sizeof(abs) - 1);
        if (len < 0)
            return errno;
        abs[len] = '\0';
        size_t blen = strlen(fs->cfg->backing_dir);
        if (blen == 1) /* BACKING_DIR is "/" */
            blen = 0;
        if (strncmp(abs, fs->cfg->backing_dir, blen) != 0 || abs[blen] != '/')
            return EIO;
        rel = abs + blen + 1;
    }
    if (name == NULL)
        n = snprintf(out, size, "%s", rel);
    else
        n = snprintf(out, size, "%s%s%s", rel, rel[0] != '\0' ? "/" : "", name);
    if (n < 0 || (size_t)n >= size)
        return ENAMETOOLONG;
    return 0;
}

bool fs_name_is_reserved(struct fs *fs, struct fs_inode *parent, const char *name)
{
    return parent == inode_root(fs->inodes) && strcmp(name, FS_STAGING_NAME) == 0;
}

static void fs_status_attr(struct fs *fs, struct fs_inode *in, struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = (ino_t)inode_id(fs->inodes, in);
    if (in->kind == FS_INODE_STATUS_DIR) {
        st->st_mode = S_IFDIR | 0555;
        st->st_nlink = 2;
    } else {
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
    }
    st->st_blksize = 4096;
}

int fs_stat_inode(struct fs *fs, struct fs_inode *in, struct stat *st)
{
    switch (in->kind) {
    case FS_INODE_REAL:
        if (fstatat(in->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
            return errno;
        return 0;
    case FS_INODE_VIRTUAL:
        *st = in->vst;
        st->st_ino = (ino_t)inode_id(fs->inodes, in);
        return 0;
    case FS_INODE_STATUS_DIR:
    case FS_INODE_STATUS_FILE:
        fs_status_attr(fs, in, st);
        return 0;
    }
    return EINVAL;
}

static int fs_lookup_virtual(struct fs *fs, struct fs_inode *parent, const char *name,
                             struct fuse_entry_param *e)
{
    char path[FS_PATH_MAX];
    struct stat st;
    struct stat root;
    int rc;

    if (fs->hooks.lookup_virtual == NULL)
        return ENOENT;
    rc = fs_path_of(fs, parent, name, path, sizeof(path));
    if (rc != 0)
        return ENOENT;
    memset(&st, 0, sizeof(st));
    rc = fs->hooks.lookup_virtual(fs->hooks.arg, path, &st);
    if (rc != 0)
        return ENOENT;
    if ((st.st_mode & S_IFMT) == 0)
        st.st_mode |= S_IFREG;
    if (fstat(fs->backing_fd, &root) == 0) {
        st.st_uid = root.st_uid;
        st.st_gid = root.st_gid;
    }
    if (st.st_nlink == 0)
        st.st_nlink = 1;
    st.st_blksize = 4096;
    struct fs_inode *in = inode_get_virtual(fs->inodes, path, &st);
    if (in == NULL)
        return ENOMEM;
    e->ino = inode_id(fs->inodes, in);
    e->attr = in->vst;
    e->attr.st_ino = (ino_t)e->ino;
    e->attr_timeout = 1.0; /* the bucket may change; keep it short */
    e->entry_timeout = 1.0;
    return 0;
}

int fs_do_lookup(struct fs *fs, struct fs_inode *parent, const char *name,
                 struct fuse_entry_param *e)
{
    struct stat st;
    int fd;

    memset(e, 0, sizeof(*e));
    if (parent->kind == FS_INODE_STATUS_DIR) {
        struct fs_inode *in;
        if (strcmp(name, FS_STATUS_FILE_NAME) == 0)
            in = inode_status_file(fs->inodes);
        else if (strcmp(name, FS_STATS_FILE_NAME) == 0)
            in = inode_stats_file(fs->inodes);
        else
            return ENOENT;
        e->ino = inode_id(fs->inodes, in);
        fs_status_attr(fs, in, &e->attr);
        e->entry_timeout = FS_TIMEOUT_SECS;
        e->attr_timeout = 0;
        return 0;
    }
    if (parent->kind != FS_INODE_REAL)
        return ENOTDIR;
    if (fs_name_is_reserved(fs, parent, name)) {
        struct fs_inode *in = inode_status_dir(fs->inodes);
        e->ino = inode_id(fs->inodes, in);
        fs_status_attr(fs, in, &e->attr);
        e->entry_timeout = FS_TIMEOUT_SECS;
        e->attr_timeout = FS_TIMEOUT_SECS;
        return 0;
    }
    fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int rc = errno;
        if (rc == ENOENT)
            return fs_lookup_virtual(fs, parent, name, e);
        return rc;
    }
    if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
        int rc = errno;
        close(fd);
        return rc;
    }
    struct fs_inode *in = inode_get(fs->inodes, fd, &st); /* owns fd */
    if (in == NULL)
        return ENOMEM;
    e->ino = inode_id(fs->inodes, in);
    e->attr = st;
    e->attr_timeout = FS_TIMEOUT_SECS;
    e->entry_timeout = FS_TIMEOUT_SECS;
    return 0;
}

int fs_chown_new(struct fs *fs, fuse_req_t req, struct fs_inode *parent, int fd, const char *name,
                 mode_t mode)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    struct stat pst;
    gid_t gid = ctx->gid;
    int rc = 0;

    (void)fs;
    if (ctx->uid == geteuid() && ctx->gid == getegid())
        return 0;
    if (fstatat(parent->fd, "", &pst, AT_EMPTY_PATH) == 0 && (pst.st_mode & S_ISGID))
        gid = (gid_t)-1; /* the entry inherited the directory's group, as the kernel decided */
    if (fd >= 0)
        rc = fchown(fd, ctx->uid, gid);
    else
        rc = fchownat(parent->fd, name, ctx->uid, gid, AT_SYMLINK_NOFOLLOW);
    if (rc != 0)
        return errno;
    /* chown clears set-id bits of files; put back what the caller asked for. */
    if ((mode & (S_ISUID | S_ISGID)) && !S_ISDIR(mode) && !S_ISLNK(mode)) {
        if (fd >= 0)
            rc = fchmod(fd, mode & 07777);
        else
            rc = fchmodat(parent->fd, name, mode & 07777, 0);
        if (rc != 0)
            return errno;
    }
    return 0;
}

int fs_inval_path(void *arg, const char *path)
{
    struct fs *fs = arg;
    char parent[FS_PATH_MAX];
    const char *name = path;
    struct stat st;
    fuse_ino_t parent_id = FUSE_ROOT_ID;
    int rc = 0;

    if (fs->se == NULL)
        return 0;
    const char *slash = strrchr(path, '/');
    if (slash != NULL) {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof(parent))
            return ENAMETOOLONG;
        memcpy(parent, path, n);
        parent[n] = '\0';
        name = slash + 1;
        if (fstatat(fs->backing_fd, parent, &st, AT_SYMLINK_NOFOLLOW) != 0)
            return errno;
        struct fs_inode *p = inode_find(fs->inodes, st.st_dev, st.st_ino);
        if (p == NULL)
            return 0; /* the kernel has no dentry under an unknown directory */
        parent_id = inode_id(fs->inodes, p);
    }
    rc = fuse_lowlevel_notify_inval_entry(fs->se, parent_id, name, strlen(name));
    if (rc < 0 && rc != -ENOENT)
        return -rc;
    if (fstatat(fs->backing_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        struct fs_inode *in = inode_find(fs->inodes, st.st_dev, st.st_ino);
        if (in != NULL) {
            rc = fuse_lowlevel_notify_inval_inode(fs->se, inode_id(fs->inodes, in), 0, 0);
            if (rc < 0 && rc != -ENOENT)
                return -rc;
        }
    }
    return 0;
}

int fs_materialise(struct fs *fs, struct fs_inode *in)
{
    struct stat st;
    int rc;

    if (__atomic_load_n(&in->kind, __ATOMIC_ACQUIRE) != FS_INODE_VIRTUAL)
        return 0;
    if (fs->hooks.materialise == NULL)
        return ENOENT;
    rc = fs->hooks.materialise(fs->hooks.arg, in->vpath);
    if (rc != 0)
        return rc;
    int fd = openat(fs->backing_fd, in->vpath, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? EIO : errno;
    if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
        rc = errno;
        close(fd);
        return rc;
    }
    inode_promote(fs->inodes, in, fd, &st); /* owns fd */
    return 0;
}
