/* fs/ops_dir.c - FUSE handlers for directories: opendir, readdir, readdirplus, releasedir,
 * fsyncdir. opendir reads the whole backing directory into memory (offsets are indexes, so
 * rewinddir and seekdir are exact); the staging directory is hidden in the root; virtual
 * entries from hooks.list_virtual are appended, and then opendir runs on a worker. */
#include "fs/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

struct dir_entry {
    char *name;
    ino_t ino;
    unsigned char type; /* DT_* */
    bool is_virtual;
    struct stat vst; /* virtual entries */
};

struct dir_handle {
    struct fs_inode *inode;
    struct dir_entry *entries;
    size_t n;
    size_t cap;
    bool consumed; /* a readdir went past offset 0: refresh on the next offset-0 read */
};

static void dir_entries_clear(struct dir_handle *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->entries[i].name);
    free(d->entries);
    d->entries = NULL;
    d->n = 0;
    d->cap = 0;
}

static int dir_add(struct dir_handle *d, const char *name, ino_t ino, unsigned char type)
{
    if (d->n == d->cap) {
        size_t cap = d->cap != 0 ? d->cap * 2 : 64;
        struct dir_entry *e = realloc(d->entries, cap * sizeof(*e));
        if (e == NULL)
            return ENOMEM;
        d->entries = e;
        d->cap = cap;
    }
    struct dir_entry *e = &d->entries[d->n];
    memset(e, 0, sizeof(*e));
    e->name = strdup(name);
    if (e->name == NULL)
        return ENOMEM;
    e->ino = ino;
    e->type = type;
    d->n++;
    return 0;
}

static bool dir_has(const struct dir_handle *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->entries[i].name, name) == 0)
            return true;
    }
    return false;
}

/* Reads the backing directory into d. */
static int dir_load(struct fs *fs, struct dir_handle *d)
{
    struct fs_inode *in = d->inode;
    bool is_root = in == inode_root(fs->inodes);
    int rc = 0;

    dir_entries_clear(d);
    if (in->kind == FS_INODE_STATUS_DIR) {
        rc = dir_add(d, ".", (ino_t)inode_id(fs->inodes, in), DT_DIR);
        if (rc == 0)
            rc = dir_add(d, "..", 1, DT_DIR);
        if (rc == 0)
            rc = dir_add(d, FS_STATUS_FILE_NAME,
                         (ino_t)inode_id(fs->inodes, inode_status_file(fs->inodes)), DT_REG);
        if (rc == 0)
            rc = dir_add(d, FS_STATS_FILE_NAME,
                         (ino_t)inode_id(fs->inodes, inode_stats_file(fs->inodes)), DT_REG);
        return rc;
    }
    int fd = openat(in->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    DIR *dp = fdopendir(fd);
    if (dp == NULL) {
        rc = errno;
        close(fd);
        return rc;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(dp);
        if (de == NULL) {
            rc = errno;
            break;
        }
        if (is_root && strcmp(de->d_name, FS_STAGING_NAME) == 0)
            continue;
        rc = dir_add(d, de->d_name, de->d_ino, de->d_type);
        if (rc != 0)
            break;
    }
    closedir(dp);
    return rc;
}

struct virtual_ctx {
    struct dir_handle *d;
    int rc;
};

static void dir_emit_virtual(void *arg, const char *name, const struct stat *st)
{
    struct virtual_ctx *c = arg;

    if (c->rc != 0 || strchr(name, '/') != NULL || name[0] == '\0' || dir_has(c->d, name))
        return;
    if (c->d->inode->kind == FS_INODE_REAL && strcmp(name, FS_STAGING_NAME) == 0)
        return;
    /* d_ino 0 would make readdir(3) skip the entry: use the hook's or a placeholder */
    c->rc = dir_add(c->d, name, st->st_ino != 0 ? st->st_ino : 1,
                    S_ISDIR(st->st_mode) ? DT_DIR : DT_REG);
    if (c->rc == 0) {
        c->d->entries[c->d->n - 1].is_virtual = true;
        c->d->entries[c->d->n - 1].vst = *st;
    }
}

/* Backing entries plus virtual ones. May block (list_virtual). */
static int dir_load_all(struct fs *fs, struct dir_handle *d)
{
    int rc = dir_load(fs, d);

    if (rc != 0 || fs->hooks.list_virtual == NULL || d->inode->kind != FS_INODE_REAL)
        return rc;
    char path[FS_PATH_MAX];
    if (fs_path_of(fs, d->inode, NULL, path, sizeof(path)) != 0)
        return 0;
    struct virtual_ctx c = {.d = d, .rc = 0};
    rc = fs->hooks.list_virtual(fs->hooks.arg, path, dir_emit_virtual, &c);
    if (rc != 0)
        LOG_WARN("fs: virtual listing failed dir=%s errno=%s", path, errno_name(rc));
    return c.rc; /* a failed listing still shows the local entries */
}

static void dir_reply_open(fuse_req_t req, struct fs *fs, struct dir_handle *d,
                           struct fuse_file_info *fi)
{
    int rc = dir_load_all(fs, d);

    if (rc != 0) {
        dir_entries_clear(d);
        free(d);
        fuse_reply_err(req, rc);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)d;
    fi->keep_cache = 0;
    if (fuse_reply_open(req, fi) != 0) {
        dir_entries_clear(d);
        free(d);
    }
}

struct opendir_job {
    fuse_req_t req;
    struct dir_handle *d;
    struct fuse_file_info fi;
};

static void fs_opendir_job(void *arg)
{
    struct opendir_job *j = arg;

    dir_reply_open(j->req, fs_of(j->req), j->d, &j->fi);
    free(j);
}

void fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct fs_inode *in = inode_of(fs->inodes, ino);

    if (in->kind != FS_INODE_REAL && in->kind != FS_INODE_STATUS_DIR) {
        fuse_reply_err(req, ENOTDIR);
        return;
    }
    struct dir_handle *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    d->inode = in;
    if (fs->hooks.list_virtual != NULL && in->kind == FS_INODE_REAL) {
        struct opendir_job *j = malloc(sizeof(*j));
        if (j != NULL) {
            *j = (struct opendir_job){.req = req, .d = d, .fi = *fi};
            if (workers_submit(fs->workers, fs_opendir_job, j) == 0)
                return;
            free(j);
        }
    }
    dir_reply_open(req, fs, d, fi);
}

static void fs_do_readdir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi,
                          bool plus)
{
    struct fs *fs = fs_of(req);
    struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
    char *buf;
    size_t used = 0;
    int rc = 0;

    if (off == 0 && d->consumed) {
        rc = dir_load(fs, d); /* rewinddir: see new entries (virtual ones need a reopen) */
        if (rc != 0) {
            fuse_reply_err(req, rc);
            return;
        }
    }
    d->consumed = true;
    buf = malloc(size);
    if (buf == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    for (size_t i = off < 0 ? d->n : (size_t)off; i < d->n; i++) {
        struct dir_entry *de = &d->entries[i];
        struct stat st = {.st_ino = de->ino, .st_mode = (mode_t)DTTOIF(de->type)};
        size_t n;

        if (!plus) {
            n = fuse_add_direntry(req, buf + used, size - used, de->name, &st, (off_t)(i + 1));
            if (n > size - used)
                break;
            used += n;
            continue;
        }
        struct fuse_entry_param e = {.attr = st};
        bool dot = strcmp(de->name, ".") == 0 || strcmp(de->name, "..") == 0;
        bool looked_up = false;
        if (!dot && !de->is_virtual) {
            rc = fs_do_lookup(fs, d->inode, de->name, &e);
            if (rc != 0) { /* vanished meanwhile: skip it */
                rc = 0;
                continue;
            }
            looked_up = e.ino != 0;
        }
        n = fuse_add_direntry_plus(req, buf + used, size - used, de->name, &e, (off_t)(i + 1));
        if (n > size - used) {
            if (looked_up) /* not sent: give the lookup back */
                inode_unref(fs->inodes, inode_of(fs->inodes, e.ino), 1);
            break;
        }
        used += n;
    }
    fuse_reply_buf(req, buf, used);
    free(buf);
}

void fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
    (void)ino;
    fs_do_readdir(req, size, off, fi, false);
}

void fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)ino;
    fs_do_readdir(req, size, off, fi, true);
}

void fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;

    (void)ino;
    dir_entries_clear(d);
    free(d);
    fuse_reply_err(req, 0);
}

struct fsyncdir_job {
    fuse_req_t req;
    int fd;
    bool datasync;
};

static void fs_fsyncdir_job(void *arg)
{
    struct fsyncdir_job *j = arg;
    int rc = j->datasync ? fdatasync(j->fd) : fsync(j->fd);

    rc = rc != 0 ? errno : 0;
    close(j->fd);
    fuse_reply_err(j->req, rc);
    free(j);
}

void fs_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    struct fs *fs = fs_of(req);
    struct fs_inode *in = inode_of(fs->inodes, ino);

    (void)fi;
    if (in->kind != FS_INODE_REAL) {
        fuse_reply_err(req, 0);
        return;
    }
    struct fsyncdir_job *j = malloc(sizeof(*j));
    if (j == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    j->req = req;
    j->datasync = datasync != 0;
    j->fd = openat(in->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->fd < 0) {
        int rc = errno;
        free(j);
        fuse_reply_err(req, rc);
        return;
    }
    if (workers_submit(fs->workers, fs_fsyncdir_job, j) != 0)
        fs_fsyncdir_job(j);
}
