/* fs/inode.c - the inode table (see fs/inode.h).
 * Layout: a chained hash table on (dev, ino) that doubles when it holds more inodes than
 * buckets; virtual inodes sit on their own short list (keyed by path). One mutex, t->mu, guards
 * the buckets, the list, every nlookup and every next pointer; no I/O runs under it except the
 * close() of a freed inode's fd, which is done after unlocking. */
#include "fs/inode.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"

#define INODE_TABLE_MIN_BUCKETS 1024u

struct inode_table {
    pthread_mutex_t mu;
    struct fs_inode **buckets; /* guarded by mu */
    size_t n_buckets;          /* power of two; guarded by mu */
    size_t n_inodes;           /* guarded by mu */
    struct fs_inode *virtuals; /* guarded by mu */
    struct fs_inode root;
    struct fs_inode status_dir;
    struct fs_inode status_file;
    struct fs_inode stats_file;
};

static size_t inode_hash(dev_t dev, ino_t ino)
{
    uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h ^ (h >> 29));
}

static bool inode_is_special(const struct inode_table *t, const struct fs_inode *in)
{
    return in == &t->root || in == &t->status_dir || in == &t->status_file || in == &t->stats_file;
}

struct inode_table *inode_table_new(int root_fd, const struct stat *root_st)
{
    struct inode_table *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        close(root_fd);
        return NULL;
    }
    t->n_buckets = INODE_TABLE_MIN_BUCKETS;
    t->buckets = calloc(t->n_buckets, sizeof(*t->buckets));
    if (t->buckets == NULL) {
        close(root_fd);
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    t->root.kind = FS_INODE_REAL;
    t->root.fd = root_fd;
    t->root.dev = root_st->st_dev;
    t->root.ino = root_st->st_ino;
    t->root.type = S_IFDIR;
    t->root.nlookup = 2;
    t->status_dir.kind = FS_INODE_STATUS_DIR;
    t->status_dir.fd = -1;
    t->status_dir.type = S_IFDIR;
    t->status_file.kind = FS_INODE_STATUS_FILE;
    t->status_file.fd = -1;
    t->status_file.type = S_IFREG;
    t->stats_file.kind = FS_INODE_STATUS_FILE;
    t->stats_file.fd = -1;
    t->stats_file.type = S_IFREG;
    return t;
}

static void inode_destroy(struct fs_inode *in)
{
    if (in->fd >= 0 && close(in->fd) != 0)
        LOG_WARN("fs: close of inode fd failed errno=%d", errno);
    free(in->vpath);
    free(in);
}

void inode_table_free(struct inode_table *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n_buckets; i++) {
        struct fs_inode *in = t->buckets[i];
        while (in != NULL) {
            struct fs_inode *next = in->next;
            inode_destroy(in);
            in = next;
        }
    }
    while (t->virtuals != NULL) {
        struct fs_inode *next = t->virtuals->next;
        inode_destroy(t->virtuals);
        t->virtuals = next;
    }
    if (t->root.fd >= 0)
        close(t->root.fd);
    free(t->buckets);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

struct fs_inode *inode_root(struct inode_table *t)
{
    return &t->root;
}

struct fs_inode *inode_status_dir(struct inode_table *t)
{
    return &t->status_dir;
}

struct fs_inode *inode_status_file(struct inode_table *t)
{
    return &t->status_file;
}

struct fs_inode *inode_stats_file(struct inode_table *t)
{
    return &t->stats_file;
}

struct fs_inode *inode_of(struct inode_table *t, fuse_ino_t ino)
{
    if (ino == FUSE_ROOT_ID)
        return &t->root;
    return (struct fs_inode *)(uintptr_t)ino;
}

fuse_ino_t inode_id(struct inode_table *t, struct fs_inode *in)
{
    if (in == &t->root)
        return FUSE_ROOT_ID;
    return (fuse_ino_t)(uintptr_t)in;
}

/* Caller holds mu. */
static void inode_table_grow(struct inode_table *t)
{
    size_t n = t->n_buckets * 2;
    struct fs_inode **b = calloc(n, sizeof(*b));

    if (b == NULL)
        return; /* keep the longer chains; still correct */
    for (size_t i = 0; i < t->n_buckets; i++) {
        struct fs_inode *in = t->buckets[i];
        while (in != NULL) {
            struct fs_inode *next = in->next;
            size_t h = inode_hash(in->dev, in->ino) & (n - 1);
            in->next = b[h];
            b[h] = in;
            in = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = n;
}

/* Caller holds mu. */
static struct fs_inode *inode_find_locked(struct inode_table *t, dev_t dev, ino_t ino)
{
    if (dev == t->root.dev && ino == t->root.ino)
        return &t->root;
    for (struct fs_inode *in = t->buckets[inode_hash(dev, ino) & (t->n_buckets - 1)]; in != NULL;
         in = in->next) {
        if (in->dev == dev && in->ino == ino)
            return in;
    }
    return NULL;
}

struct fs_inode *inode_get(struct inode_table *t, int fd, const struct stat *st)
{
    struct fs_inode *fresh = NULL;
    struct fs_inode *in;

    pthread_mutex_lock(&t->mu);
    in = inode_find_locked(t, st->st_dev, st->st_ino);
    if (in != NULL) {
        if (!inode_is_special(t, in))
            in->nlookup++;
        pthread_mutex_unlock(&t->mu);
        close(fd);
        return in;
    }
    pthread_mutex_unlock(&t->mu);

    fresh = calloc(1, sizeof(*fresh));
    if (fresh == NULL) {
        close(fd);
        return NULL;
    }
    fresh->kind = FS_INODE_REAL;
    fresh->fd = fd;
    fresh->dev = st->st_dev;
    fresh->ino = st->st_ino;
    fresh->type = st->st_mode & S_IFMT;
    fresh->nlookup = 1;

    pthread_mutex_lock(&t->mu);
    in = inode_find_locked(t, st->st_dev, st->st_ino); /* a worker may have raced us */
    if (in != NULL) {
        if (!inode_is_special(t, in))
            in->nlookup++;
        pthread_mutex_unlock(&t->mu);
        inode_destroy(fresh);
        return in;
    }
    if (t->n_inodes >= t->n_buckets)
        inode_table_grow(t);
    size_t h = inode_hash(fresh->dev, fresh->ino) & (t->n_buckets - 1);
    fresh->next = t->buckets[h];
    t->buckets[h] = fresh;
    t->n_inodes++;
    pthread_mutex_unlock(&t->mu);
    return fresh;
}

struct fs_inode *inode_ref_virtual(struct inode_table *t, const char *vpath)
{
    struct fs_inode *in;

    pthread_mutex_lock(&t->mu);
    for (in = t->virtuals; in != NULL; in = in->next) {
        if (strcmp(in->vpath, vpath) == 0) {
            in->nlookup++;
            break;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return in;
}

struct fs_inode *inode_get_virtual(struct inode_table *t, const char *vpath, const struct stat *st)
{
    struct fs_inode *in;

    pthread_mutex_lock(&t->mu);
    for (in = t->virtuals; in != NULL; in = in->next) {
        if (strcmp(in->vpath, vpath) == 0) {
            in->nlookup++;
            in->vst = *st;
            pthread_mutex_unlock(&t->mu);
            return in;
        }
    }
    in = calloc(1, sizeof(*in));
    if (in != NULL)
        in->vpath = strdup(vpath);
    if (in == NULL || in->vpath == NULL) {
        pthread_mutex_unlock(&t->mu);
        free(in);
        return NULL;
    }
    in->kind = FS_INODE_VIRTUAL;
    in->fd = -1;
    in->type = st->st_mode & S_IFMT;
    in->vst = *st;
    in->nlookup = 1;
    in->next = t->virtuals;
    t->virtuals = in;
    pthread_mutex_unlock(&t->mu);
    return in;
}

void inode_promote(struct inode_table *t, struct fs_inode *in, int fd, const struct stat *st)
{
    pthread_mutex_lock(&t->mu);
    if (in->kind != FS_INODE_VIRTUAL) { /* promoted by a concurrent opener */
        pthread_mutex_unlock(&t->mu);
        close(fd);
        return;
    }
    struct fs_inode **pp = &t->virtuals;
    while (*pp != NULL && *pp != in)
        pp = &(*pp)->next;
    if (*pp == in)
        *pp = in->next;
    in->next = NULL;
    in->fd = fd;
    in->dev = st->st_dev;
    in->ino = st->st_ino;
    in->type = st->st_mode & S_IFMT;
    if (inode_find_locked(t, st->st_dev, st->st_ino) == NULL) {
        if (t->n_inodes >= t->n_buckets)
            inode_table_grow(t);
        size_t h = inode_hash(in->dev, in->ino) & (t->n_buckets - 1);
        in->next = t->buckets[h];
        t->buckets[h] = in;
        t->n_inodes++;
    }
    __atomic_store_n(&in->kind, FS_INODE_REAL, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&t->mu);
}

void inode_rekey(struct inode_table *t, struct fs_inode *in, int fd, const struct stat *st)
{
    pthread_mutex_lock(&t->mu);
    if (in->kind != FS_INODE_REAL || inode_is_special(t, in) ||
        inode_find_locked(t, st->st_dev, st->st_ino) != NULL) {
        pthread_mutex_unlock(&t->mu);
        close(fd);
        return;
    }
    struct fs_inode **pp = &t->buckets[inode_hash(in->dev, in->ino) & (t->n_buckets - 1)];
    while (*pp != NULL && *pp != in)
        pp = &(*pp)->next;
    if (*pp == in)
        *pp = in->next;
    /* dup2, not a new fd number: other threads may be using in->fd right now */
    if (dup2(fd, in->fd) < 0)
        LOG_WARN("fs: dup2 of a replaced inode's fd failed errno=%s", errno_name(errno));
    close(fd);
    in->dev = st->st_dev;
    in->ino = st->st_ino;
    size_t h = inode_hash(in->dev, in->ino) & (t->n_buckets - 1);
    in->next = t->buckets[h];
    t->buckets[h] = in;
    pthread_mutex_unlock(&t->mu);
}

void inode_ref(struct inode_table *t, struct fs_inode *in)
{
    if (inode_is_special(t, in))
        return;
    pthread_mutex_lock(&t->mu);
    in->nlookup++;
    pthread_mutex_unlock(&t->mu);
}

/* Caller holds mu. Unlinks in from wherever it is. */
static void inode_unlink_locked(struct inode_table *t, struct fs_inode *in)
{
    struct fs_inode **pp;

    if (in->kind == FS_INODE_VIRTUAL)
        pp = &t->virtuals;
    else
        pp = &t->buckets[inode_hash(in->dev, in->ino) & (t->n_buckets - 1)];
    for (; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == in) {
            *pp = in->next;
            if (in->kind == FS_INODE_REAL)
                t->n_inodes--;
            return;
        }
    }
}

void inode_unref(struct inode_table *t, struct fs_inode *in, uint64_t n)
{
    bool dead = false;

    if (inode_is_special(t, in))
        return;
    pthread_mutex_lock(&t->mu);
    if (in->nlookup <= n) {
        in->nlookup = 0;
        inode_unlink_locked(t, in);
        dead = true;
    } else {
        in->nlookup -= n;
    }
    pthread_mutex_unlock(&t->mu);
    if (dead)
        inode_destroy(in);
}

struct fs_inode *inode_find(struct inode_table *t, dev_t dev, ino_t ino)
{
    pthread_mutex_lock(&t->mu);
    struct fs_inode *in = inode_find_locked(t, dev, ino);
    pthread_mutex_unlock(&t->mu);
    return in;
}

size_t inode_count(struct inode_table *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->n_inodes;
    pthread_mutex_unlock(&t->mu);
    return n;
}
