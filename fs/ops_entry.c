/* fs/ops_entry.c - FUSE handlers for names and attributes: lookup, forget, getattr, setattr,
 * mknod, mkdir, symlink, link, unlink, rmdir, rename, readlink, statfs. Every handler resolves
 * its inodes, runs the syscall relative to the O_PATH fds (caller's semantics; new entries get
 * the caller's uid/gid and mode & ~umask), saves errno, calls the non-blocking hook, replies
 * once (an unlink of a -wal may reply from a worker: see fs_op_unlink). */
#include "fs/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/flusher.h"
#include "fs/mounthelper.h"

/* Replies rc (the errno of what came before) if it is not 0, else the entry of name in parent. */
static void fs_reply_entry(fuse_req_t req, struct fs *fs, struct fs_inode *parent, const char *name,
                           int rc)
{
    struct fuse_entry_param e;

    if (rc == 0)
        rc = fs_do_lookup(fs, parent, name, &e);
    if (rc != 0)
        fuse_reply_err(req, rc);
    else
        fuse_reply_entry(req, &e);
}

void fs_op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs *fs = fs_of(req);

    fs_reply_entry(req, fs, inode_of(fs->inodes, parent), name, 0);
}

void fs_op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    struct fs *fs = fs_of(req);

    inode_unref(fs->inodes, inode_of(fs->inodes, ino), nlookup);
    fuse_reply_none(req);
}

void fs_op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    struct fs *fs = fs_of(req);

    for (size_t i = 0; i < count; i++)
        inode_unref(fs->inodes, inode_of(fs->inodes, forgets[i].ino), forgets[i].nlookup);
    fuse_reply_none(req);
}

static double fs_attr_timeout(const struct fs_inode *in)
{
    switch (in->kind) {
    case FS_INODE_REAL:
    case FS_INODE_STATUS_DIR:
        return FS_TIMEOUT_SECS;
    case FS_INODE_VIRTUAL:
        return 1.0;
    case FS_INODE_STATUS_FILE:
        return 0;
    }
    return 0;
}

void fs_op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct fs_inode *in = inode_of(fs->inodes, ino);
    struct stat st;
    int rc;

    if (fi != NULL && fs_file_of(fi) != NULL && fs_file_of(fi)->fd >= 0)
        rc = fstat(fs_file_of(fi)->fd, &st) == 0 ? 0 : errno;
    else
        rc = fs_stat_inode(fs, in, &st);
    if (rc != 0) {
        fuse_reply_err(req, rc);
        return;
    }
    fuse_reply_attr(req, &st, fs_attr_timeout(in));
}

/* Applies the attribute changes to a real inode; 0 or errno. */
static int fs_setattr_real(struct fs *fs, struct fs_inode *in, struct stat *attr, int to_set,
                           struct fuse_file_info *fi)
{
    struct fs_file *f = fi != NULL ? fs_file_of(fi) : NULL;
    int fd = f != NULL ? f->fd : -1;
    char proc[64];
    int rc;

    fs_proc_path(in->fd, proc, sizeof(proc));
    if (to_set & FUSE_SET_ATTR_MODE) {
        rc = fd >= 0 ? fchmod(fd, attr->st_mode & 07777)
                     : fchmodat(AT_FDCWD, proc, attr->st_mode & 07777, 0);
        if (rc != 0)
            return errno;
    }
    if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
        uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
        gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
        if (fchownat(in->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
            return errno;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        char path[FS_PATH_MAX];
        uint64_t size = (uint64_t)attr->st_size;
        bool hooked = fs->hooks.truncate_before != NULL || fs->hooks.truncate_after != NULL;
        void *fh = f != NULL ? f->hook_handle : NULL;

        if (hooked && fs_path_of(fs, in, NULL, path, sizeof(path)) != 0)
            hooked = false;
        if (hooked && fs->hooks.truncate_before != NULL) {
            rc = fs->hooks.truncate_before(fs->hooks.arg, fh, path, size);
            if (rc != 0)
                return rc; /* refused (staging disk full): not truncated */
        }
        do {
            rc = fd >= 0 ? ftruncate(fd, attr->st_size) : truncate(proc, attr->st_size);
        } while (rc != 0 && errno == EINTR);
        rc = rc != 0 ? errno : 0;
        if (hooked && fs->hooks.truncate_after != NULL)
            fs->hooks.truncate_after(fs->hooks.arg, fh, path, size, rc);
        if (rc != 0)
            return rc;
    }
    if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
        struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
        if (to_set & FUSE_SET_ATTR_ATIME_NOW)
            ts[0].tv_nsec = UTIME_NOW;
        else if (to_set & FUSE_SET_ATTR_ATIME)
            ts[0] = attr->st_atim;
        if (to_set & FUSE_SET_ATTR_MTIME_NOW)
            ts[1].tv_nsec = UTIME_NOW;
        else if (to_set & FUSE_SET_ATTR_MTIME)
            ts[1] = attr->st_mtim;
        if (fd >= 0)
            rc = futimens(fd, ts);
        else
            rc = utimensat(in->fd, "", ts, AT_EMPTY_PATH);
        if (rc != 0)
            return errno;
    }
    return 0;
}

struct setattr_job {
    fuse_req_t req;
    struct fs_inode *in;
    struct stat attr;
    int to_set;
};

static void fs_setattr_reply(fuse_req_t req, struct fs *fs, struct fs_inode *in,
                             struct stat *attr, int to_set, struct fuse_file_info *fi)
{
    struct stat st;
    int rc = fs_setattr_real(fs, in, attr, to_set, fi);

    if (rc == 0) {
        if (fi != NULL && fs_file_of(fi) != NULL && fs_file_of(fi)->fd >= 0)
            rc = fstat(fs_file_of(fi)->fd, &st) == 0 ? 0 : errno;
        else
            rc = fs_stat_inode(fs, in, &st);
    }
    if (rc != 0)
        fuse_reply_err(req, rc);
    else
        fuse_reply_attr(req, &st, FS_TIMEOUT_SECS);
}

static void fs_setattr_job(void *arg)
{
    struct setattr_job *j = arg;
    struct fs *fs = fs_of(j->req);
    int rc = fs_materialise(fs, j->in);

    if (rc != 0)
        fuse_reply_err(j->req, rc);
    else
        fs_setattr_reply(j->req, fs, j->in, &j->attr, j->to_set, NULL);
    free(j);
}

void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                   struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct fs_inode *in = inode_of(fs->inodes, ino);

    switch (__atomic_load_n(&in->kind, __ATOMIC_ACQUIRE)) {
    case FS_INODE_REAL:
        fs_setattr_reply(req, fs, in, attr, to_set, fi);
        return;
    case FS_INODE_VIRTUAL: {
        struct setattr_job *j = calloc(1, sizeof(*j));
        if (j == NULL) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        *j = (struct setattr_job){.req = req, .in = in, .attr = *attr, .to_set = to_set};
        int rc = workers_submit(fs->workers, fs_setattr_job, j);
        if (rc != 0) {
            free(j);
            fuse_reply_err(req, rc);
        }
        return;
    }
    case FS_INODE_STATUS_DIR:
    case FS_INODE_STATUS_FILE:
        fuse_reply_err(req, EPERM);
        return;
    }
}

void fs_op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    struct fs *fs = fs_of(req);
    struct fs_inode *in = inode_of(fs->inodes, ino);
    char buf[FS_PATH_MAX + 1];

    if (in->kind != FS_INODE_REAL) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    ssize_t n = readlinkat(in->fd, "", buf, sizeof(buf));
    if (n < 0) {
        fuse_reply_err(req, errno);
        return;
    }
    if ((size_t)n >= sizeof(buf)) {
        fuse_reply_err(req, ENAMETOOLONG);
        return;
    }
    buf[n] = '\0';
    fuse_reply_readlink(req, buf);
}

/* Checks a parent for an entry-creating call; 0 or the errno to reply. */
static int fs_check_parent(struct fs *fs, struct fs_inode *parent, const char *name)
{
    if (parent->kind == FS_INODE_STATUS_DIR)
        return EPERM;
    if (parent->kind != FS_INODE_REAL)
        return ENOTDIR;
    if (fs_name_is_reserved(fs, parent, name))
        return EPERM;
    return 0;
}

/* Shared tail of mknod/mkdir/symlink, rc being the errno of the check and the syscall: gives
 * the new entry its owner (removing it again if that fails), then replies. */
static void fs_reply_new_entry(fuse_req_t req, struct fs *fs, struct fs_inode *parent,
                               const char *name, mode_t mode, int rc)
{
    if (rc == 0) {
        rc = fs_chown_new(fs, req, parent, -1, name, mode);
        if (rc != 0)
            unlinkat(parent->fd, name, S_ISDIR(mode) ? AT_REMOVEDIR : 0);
    }
    fs_reply_entry(req, fs, parent, name, rc);
}

void fs_op_mknod(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode, dev_t rdev)
{
    struct fs *fs = fs_of(req);
    struct fs_inode *parent = inode_of(fs->inodes, parent_ino);
    int rc = fs_check_parent(fs, parent, name);

    mode &= ~fuse_req_ctx(req)->umask;
    if (rc == 0 && mknodat(parent->fd, name, mode, rdev) != 0)
        rc = errno;
    fs_reply_new_entry(req, fs, parent, name, mode, rc);
}

void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode)
{
    struct fs *fs = fs_of(req);
    struct fs_inode *parent = inode_of(fs->inodes, parent_ino);
    int rc = fs_check_parent(fs, parent, name);

    mode = (mode & ~fuse_req_ctx(req)->umask) & 07777;
    if (rc == 0 && mkdirat(parent->fd, name, mode) != 0)
        rc = errno;
    fs_reply_new_entry(req, fs, parent, name, S_IFDIR | mode, rc);
}

void fs_op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent_ino, const char *name)
{
    struct fs *fs = fs_of(req);
    struct fs_inode *parent = inode_of(fs->inodes, parent_ino);
    int rc = fs_check_parent(fs, parent, name);

    if (rc == 0 && symlinkat(link, parent->fd, name) != 0)
        rc = errno;
    fs_reply_new_entry(req, fs, parent, name, S_IFLNK | 0777, rc);
}

void fs_op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent_ino, const char *newname)
{
    struct fs *fs = fs_of(req);
    struct fs_inode *in = inode_of(fs->inodes, ino);
    struct fs_inode *newparent = inode_of(fs->inodes, newparent_ino);
    int rc = fs_check_parent(fs, newparent, newname);

    if (rc == 0 && in->kind != FS_INODE_REAL)
        rc = EPERM;
    if (rc == 0 && linkat(in->fd, "", newparent->fd, newname, AT_EMPTY_PATH) != 0)
        rc = errno;
    fs_reply_entry(req, fs, newparent, newname, rc);
}

/* Longest an unlink of a -wal waits for the mount helper to finish its job (see below). */
#define FS_UNLINK_HELPER_WAIT_MS 2000

static void fs_unlink_reply_job(void *arg)
{
    fuse_req_t req = arg;

    if (!mounthelper_wait_idle(fs_of(req)->mh, FS_UNLINK_HELPER_WAIT_MS))
        LOG_WARN("unlink: the mount helper is still busy after %u ms: an unmount right now "
                 "may fail with EBUSY", FS_UNLINK_HELPER_WAIT_MS);
    else
        LOG_DEBUG("unlink: -wal deleted, replied once the mount helper was between jobs");
    fuse_reply_err(req, 0);
}

void fs_op_unlink(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
    struct fs *fs = fs_of(req);
    struct fs_inode *parent = inode_of(fs->inodes, parent_ino);
    int rc = fs_check_parent(fs, parent, name);

    if (rc != 0) {
        fuse_reply_err(req, rc);
        return;
    }
    if (unlinkat(parent->fd, name, 0) != 0) {
        rc = errno;
        /* A bucket-only database: "deleting" it is the replicator's business (tombstone). */
        char path[FS_PATH_MAX];
        struct stat vst;
        if (rc == ENOENT && fs->hooks.lookup_virtual != NULL && fs->hooks.unlinked != NULL &&
            fs_path_of(fs, parent, name, path, sizeof(path)) == 0 &&
            fs->hooks.lookup_virtual(fs->hooks.arg, path, &vst) == 0) {
            fs->hooks.unlinked(fs->hooks.arg, path);
            rc = 0;
        }
        fuse_reply_err(req, rc);
        return;
    }
    char path[FS_PATH_MAX];
    bool have_path = fs_path_of(fs, parent, name, path, sizeof(path)) == 0;
    if (have_path && fs->hooks.unlinked != NULL)
        fs->hooks.unlinked(fs->hooks.arg, path);
    /* SQLite deletes the -wal as its last connection closes, and the app may exit and its
     * user unmount right after: the helper's warm-up read of that -wal may still hold it open
     * (it stops at its next chunk, seeing the file gone), or in writeback mode its sync of
     * the database (queued by a flusher tick just before), and the unmount would fail with
     * EBUSY (fresh-clone CI runs did, once each). So no sync of this database starts from now
     * on, and the app's unlink returns once the helper is between jobs; the wait runs on a
     * worker, as the helper's job may need this thread. */
    if (fs_path_is_wal(name)) {
        if (have_path)
            flusher_retire(fs->flusher, path);
        mounthelper_cancel_syncs(fs->mh);
        if (mounthelper_busy(fs->mh) && workers_submit(fs->workers, fs_unlink_reply_job, req) == 0)
            return;
    }
    fuse_reply_err(req, 0);
}

void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
    struct fs *fs = fs_of(req);
    struct fs_inode *parent = inode_of(fs->inodes, parent_ino);
    int rc = fs_check_parent(fs, parent, name);

    if (rc == 0 && unlinkat(parent->fd, name, AT_REMOVEDIR) != 0)
        rc = errno;
    fuse_reply_err(req, rc);
}

/* renameat2 plus the replicator's hook; the errno for the reply. */
static int fs_do_rename(struct fs *fs, struct fs_inode *parent, const char *name,
                        struct fs_inode *newparent, const char *newname, unsigned int flags)
{
    if (renameat2(parent->fd, name, newparent->fd, newname, flags) != 0)
        return errno;
    if (fs->hooks.renamed != NULL) {
        char from[FS_PATH_MAX];
        char to[FS_PATH_MAX];
        if (fs_path_of(fs, parent, name, from, sizeof(from)) == 0 &&
            fs_path_of(fs, newparent, newname, to, sizeof(to)) == 0)
            fs->hooks.renamed(fs->hooks.arg, from, to, flags);
    }
    return 0;
}

struct rename_job {
    fuse_req_t req;
    struct fs_inode *parent, *newparent;
    unsigned int flags;
    char from[FS_PATH_MAX];
    char *name, *newname; /* point into names */
    char names[];
};

/* [worker] The source is a bucket-only database: restore it, then rename it like any file. */
static void fs_rename_job(void *arg)
{
    struct rename_job *j = arg;
    struct fs *fs = fs_of(j->req);
    /* The kernel's inode of the source moves with the rename: make it the restored file's
     * (fs_materialise), or it would stay a virtual entry of the old name. */
    struct fs_inode *in = inode_ref_virtual(fs->inodes, j->from);
    int rc = in != NULL ? fs_materialise(fs, in) : fs->hooks.materialise(fs->hooks.arg, j->from);
    if (in != NULL)
        inode_unref(fs->inodes, in, 1);

    if (rc == 0)
        rc = fs_do_rename(fs, j->parent, j->name, j->newparent, j->newname, j->flags);
    fuse_reply_err(j->req, rc);
    free(j);
}

void fs_op_rename(fuse_req_t req, fuse_ino_t parent_ino, const char *name,
                  fuse_ino_t newparent_ino, const char *newname, unsigned int flags)
{
    struct fs *fs = fs_of(req);
    struct fs_inode *parent = inode_of(fs->inodes, parent_ino);
    struct fs_inode *newparent = inode_of(fs->inodes, newparent_ino);
    int rc = fs_check_parent(fs, parent, name);

    if (rc == 0)
        rc = fs_check_parent(fs, newparent, newname);
    if (rc == 0 && (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0)
        rc = EINVAL;
    if (rc == 0)
        rc = fs_do_rename(fs, parent, name, newparent, newname, flags);
    /* `mv` of a database listed from the bucket but not restored yet (it is not in BACKING_DIR):
     * restore it on a worker first, as an open would, instead of failing with ENOENT. */
    char from[FS_PATH_MAX];
    struct stat vst;
    if (rc == ENOENT && fs->hooks.lookup_virtual != NULL && fs->hooks.materialise != NULL &&
        fs_path_of(fs, parent, name, from, sizeof(from)) == 0 &&
        fs->hooks.lookup_virtual(fs->hooks.arg, from, &vst) == 0 && S_ISREG(vst.st_mode)) {
        size_t n1 = strlen(name) + 1, n2 = strlen(newname) + 1;
        struct rename_job *j = calloc(1, sizeof(*j) + n1 + n2);
        if (j == NULL) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        *j = (struct rename_job){.req = req, .parent = parent, .newparent = newparent,
                                 .flags = flags};
        memcpy(j->from, from, strlen(from) + 1);
        j->name = j->names;
        j->newname = j->names + n1;
        memcpy(j->name, name, n1);
        memcpy(j->newname, newname, n2);
        rc = workers_submit(fs->workers, fs_rename_job, j);
        if (rc == 0)
            return;
        free(j);
    }
    fuse_reply_err(req, rc);
}

void fs_op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct fs *fs = fs_of(req);
    struct fs_inode *in = inode_of(fs->inodes, ino);
    struct statvfs sv;
    int fd = in->kind == FS_INODE_REAL ? in->fd : fs->backing_fd;

    if (fstatvfs(fd, &sv) != 0) {
        fuse_reply_err(req, errno);
        return;
    }
    fuse_reply_statfs(req, &sv);
}
