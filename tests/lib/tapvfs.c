/* tests/lib/tapvfs.c - VFS shim reporting -wal writes (see tapvfs.h).
 * Each open file is a struct tapfile followed by the real file of the base VFS; every method
 * forwards to the real file, and WAL writes/truncates call the hooks after succeeding. */
#include "tests/lib/tapvfs.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tapvfs {
    sqlite3_vfs vfs; /* first: the sqlite3_vfs * SQLite hands back is ours */
    sqlite3_vfs *base;
    struct tapvfs_hooks hooks;
    char name[64];
};

struct tapfile {
    sqlite3_file base; /* first */
    struct tapvfs *t;
    bool is_wal;
    char *path;
    sqlite3_file *real; /* lives right after this struct */
};

#define REAL(f) (((struct tapfile *)(f))->real)

static int tap_close(sqlite3_file *f)
{
    struct tapfile *tf = (struct tapfile *)f;
    int rc = tf->real->pMethods->xClose(tf->real);
    free(tf->path);
    tf->path = NULL;
    return rc;
}

static int tap_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

static int tap_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    struct tapfile *tf = (struct tapfile *)f;
    int rc = tf->real->pMethods->xWrite(tf->real, buf, amt, off);

    if (rc == SQLITE_OK && tf->is_wal && tf->t->hooks.wal_write)
        tf->t->hooks.wal_write(tf->t->hooks.arg, tf->path, (uint64_t)off, buf, (size_t)amt);
    return rc;
}

static int tap_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    struct tapfile *tf = (struct tapfile *)f;
    int rc = tf->real->pMethods->xTruncate(tf->real, size);

    if (rc == SQLITE_OK && tf->is_wal && tf->t->hooks.wal_truncate)
        tf->t->hooks.wal_truncate(tf->t->hooks.arg, tf->path, (uint64_t)size);
    return rc;
}

static int tap_sync(sqlite3_file *f, int flags)
{
    struct tapfile *tf = (struct tapfile *)f;
    int rc = tf->real->pMethods->xSync(tf->real, flags);

    if (rc == SQLITE_OK && tf->is_wal && tf->t->hooks.wal_sync)
        tf->t->hooks.wal_sync(tf->t->hooks.arg, tf->path);
    return rc;
}

static int tap_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int tap_lock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int tap_unlock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int tap_check_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int tap_file_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int tap_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int tap_device_chars(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int tap_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}

static int tap_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void tap_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int tap_shm_unmap(sqlite3_file *f, int delete_flag)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

static int tap_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, amt, pp);
}

static int tap_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods tap_io_v3 = {
    3,
    tap_close,
    tap_read,
    tap_write,
    tap_truncate,
    tap_sync,
    tap_file_size,
    tap_lock,
    tap_unlock,
    tap_check_reserved,
    tap_file_control,
    tap_sector_size,
    tap_device_chars,
    tap_shm_map,
    tap_shm_lock,
    tap_shm_barrier,
    tap_shm_unmap,
    tap_fetch,
    tap_unfetch,
};

static const sqlite3_io_methods tap_io_v1 = {
    1,
    tap_close,
    tap_read,
    tap_write,
    tap_truncate,
    tap_sync,
    tap_file_size,
    tap_lock,
    tap_unlock,
    tap_check_reserved,
    tap_file_control,
    tap_sector_size,
    tap_device_chars,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
    NULL,
};

static int tap_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    struct tapvfs *t = (struct tapvfs *)vfs;
    struct tapfile *tf = (struct tapfile *)f;
    int rc;

    memset(tf, 0, sizeof(*tf));
    tf->t = t;
    tf->real = (sqlite3_file *)(tf + 1);
    rc = t->base->xOpen(t->base, name, tf->real, flags, out_flags);
    if (rc != SQLITE_OK || tf->real->pMethods == NULL) {
        tf->base.pMethods = NULL;
        return rc;
    }
    tf->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
    if (tf->is_wal && name) {
        tf->path = strdup(name);
        if (!tf->path) {
            tf->real->pMethods->xClose(tf->real);
            tf->base.pMethods = NULL;
            return SQLITE_NOMEM;
        }
    }
    tf->base.pMethods = tf->real->pMethods->iVersion >= 3 ? &tap_io_v3 : &tap_io_v1;
    return SQLITE_OK;
}

#define BASE(v) (((struct tapvfs *)(v))->base)

static int tap_delete(sqlite3_vfs *v, const char *name, int sync_dir)
{
    return BASE(v)->xDelete(BASE(v), name, sync_dir);
}

static int tap_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
    return BASE(v)->xAccess(BASE(v), name, flags, out);
}

static int tap_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out)
{
    return BASE(v)->xFullPathname(BASE(v), name, n, out);
}

static void *tap_dlopen(sqlite3_vfs *v, const char *name)
{
    return BASE(v)->xDlOpen(BASE(v), name);
}

static void tap_dlerror(sqlite3_vfs *v, int n, char *msg)
{
    BASE(v)->xDlError(BASE(v), n, msg);
}

static void (*tap_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
    return BASE(v)->xDlSym(BASE(v), h, sym);
}

static void tap_dlclose(sqlite3_vfs *v, void *h)
{
    BASE(v)->xDlClose(BASE(v), h);
}

static int tap_randomness(sqlite3_vfs *v, int n, char *out)
{
    return BASE(v)->xRandomness(BASE(v), n, out);
}

static int tap_sleep(sqlite3_vfs *v, int us)
{
    return BASE(v)->xSleep(BASE(v), us);
}

static int tap_current_time(sqlite3_vfs *v, double *out)
{
    return BASE(v)->xCurrentTime(BASE(v), out);
}

static int tap_last_error(sqlite3_vfs *v, int n, char *out)
{
    return BASE(v)->xGetLastError(BASE(v), n, out);
}

static int tap_current_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
    return BASE(v)->xCurrentTimeInt64(BASE(v), out);
}

static int tap_set_syscall(sqlite3_vfs *v, const char *name, sqlite3_syscall_ptr p)
{
    return BASE(v)->xSetSystemCall(BASE(v), name, p);
}

static sqlite3_syscall_ptr tap_get_syscall(sqlite3_vfs *v, const char *name)
{
    return BASE(v)->xGetSystemCall(BASE(v), name);
}

static const char *tap_next_syscall(sqlite3_vfs *v, const char *name)
{
    return BASE(v)->xNextSystemCall(BASE(v), name);
}

struct tapvfs *tapvfs_register(const struct tapvfs_hooks *hooks)
{
    sqlite3_vfs *base = sqlite3_vfs_find(NULL);
    struct tapvfs *t;

    if (!base || base->iVersion < 3)
        return NULL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->base = base;
    t->hooks = *hooks;
    snprintf(t->name, sizeof(t->name), "tapvfs-%p", (void *)t);
    t->vfs.iVersion = 3;
    t->vfs.szOsFile = (int)sizeof(struct tapfile) + base->szOsFile;
    t->vfs.mxPathname = base->mxPathname;
    t->vfs.zName = t->name;
    t->vfs.pAppData = t;
    t->vfs.xOpen = tap_open;
    t->vfs.xDelete = tap_delete;
    t->vfs.xAccess = tap_access;
    t->vfs.xFullPathname = tap_full_pathname;
    t->vfs.xDlOpen = tap_dlopen;
    t->vfs.xDlError = tap_dlerror;
    t->vfs.xDlSym = tap_dlsym;
    t->vfs.xDlClose = tap_dlclose;
    t->vfs.xRandomness = tap_randomness;
    t->vfs.xSleep = tap_sleep;
    t->vfs.xCurrentTime = tap_current_time;
    t->vfs.xGetLastError = tap_last_error;
    t->vfs.xCurrentTimeInt64 = tap_current_time64;
    t->vfs.xSetSystemCall = tap_set_syscall;
    t->vfs.xGetSystemCall = tap_get_syscall;
    t->vfs.xNextSystemCall = tap_next_syscall;
    if (sqlite3_vfs_register(&t->vfs, 0) != SQLITE_OK) {
        free(t);
        return NULL;
    }
    return t;
}

const char *tapvfs_name(const struct tapvfs *t)
{
    return t->name;
}

void tapvfs_unregister(struct tapvfs *t)
{
    if (!t)
        return;
    sqlite3_vfs_unregister(&t->vfs);
    free(t);
}
