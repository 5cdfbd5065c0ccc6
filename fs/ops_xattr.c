/* fs/ops_xattr.c - FUSE handlers for extended attributes, passed to the backing file through
 * /proc/self/fd/N of the inode's O_PATH fd (O_PATH fds refuse f*xattr). Symlinks and the
 * virtual inodes have none (ENOTSUP for changes, ENODATA / empty list for reads). */
#include "fs/fs.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/xattr.h>

/* 0 and the proc path of a real, non-symlink inode; else the errno to reply. */
static int fs_xattr_target(struct fs *fs, fuse_ino_t ino, char *proc, size_t size)
{
    struct fs_inode *in = inode_of(fs->inodes, ino);

    if (fs->cfg->noxattr)
        return ENOSYS; /* the kernel remembers it and sends no more xattr requests */

    if (in->kind != FS_INODE_REAL || in->type == S_IFLNK)
        return ENOTSUP;
    fs_proc_path(in->fd, proc, size);
    return 0;
}

/* Replies to a getxattr of name, or to a listxattr when name is NULL: the size the value needs
 * when size is 0 (the kernel's probe), else the value read into size bytes. */
static void fs_xattr_reply_read(fuse_req_t req, const char *proc, const char *name, size_t size)
{
    char *buf = NULL;
    ssize_t n;

    if (size > 0) {
        buf = malloc(size);
        if (buf == NULL) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
    }
    n = name != NULL ? getxattr(proc, name, buf, size) : listxattr(proc, buf, size);
    if (n < 0)
        fuse_reply_err(req, errno);
    else if (size == 0)
        fuse_reply_xattr(req, (size_t)n);
    else
        fuse_reply_buf(req, buf, (size_t)n);
    free(buf);
}

void fs_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                    size_t size, int flags)
{
    char proc[64];
    int rc = fs_xattr_target(fs_of(req), ino, proc, sizeof(proc));

    if (rc == 0 && setxattr(proc, name, value, size, flags) != 0)
        rc = errno;
    fuse_reply_err(req, rc);
}

void fs_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    char proc[64];
    int rc = fs_xattr_target(fs_of(req), ino, proc, sizeof(proc));

    if (rc != 0) {
        fuse_reply_err(req, rc == ENOTSUP ? ENODATA : rc);
        return;
    }
    fs_xattr_reply_read(req, proc, name, size);
}

void fs_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    char proc[64];
    int rc = fs_xattr_target(fs_of(req), ino, proc, sizeof(proc));

    if (rc == ENOSYS) {
        fuse_reply_err(req, rc);
        return;
    }
    if (rc != 0) { /* nothing to list */
        if (size == 0)
            fuse_reply_xattr(req, 0);
        else
            fuse_reply_buf(req, NULL, 0);
        return;
    }
    fs_xattr_reply_read(req, proc, NULL, size);
}

void fs_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    char proc[64];
    int rc = fs_xattr_target(fs_of(req), ino, proc, sizeof(proc));

    if (rc == 0 && removexattr(proc, name) != 0)
        rc = errno;
    fuse_reply_err(req, rc);
}
