#include "common/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fileio_write_all(int fd, const void *p, size_t len)
{
    const uint8_t *c = p;
    while (len > 0) {
        ssize_t n = write(fd, c, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        c += n;
        len -= (size_t)n;
    }
    return 0;
}

int fileio_pwrite_all(int fd, const void *p, size_t len, uint64_t off)
{
    const uint8_t *c = p;
    while (len > 0) {
        ssize_t n = pwrite(fd, c, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        c += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int fileio_pread_full(int fd, void *p, size_t len, uint64_t off, size_t *got_out)
{
    uint8_t *c = p;
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, c + got, len - got, (off_t)(off + got));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (got_out)
                *got_out = got;
            return errno;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got_out)
        *got_out = got;
    return 0;
}

int fileio_fsync_dir(const char *dir, struct err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ERR(err, errno, "open directory %s: %s", dir, errno_name(errno));
    int rc = 0;
    if (fsync(fd) != 0 && errno != EINVAL)
        rc = ERR(err, errno, "fsync directory %s: %s", dir, errno_name(errno));
    close(fd);
    return rc;
}

int fileio_fsync_parent(const char *path, struct err *err)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    return fileio_fsync_dir(dir, err);
}

int fileio_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                        struct err *err)
{
    char tmp[PATH_MAX];
    int rc = 0;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return ERR(err, ENAMETOOLONG, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return ERR(err, errno, "create %s: %s", tmp, errno_name(errno));
    rc = fileio_write_all(fd, data, len);
    if (rc) {
        ERR(err, rc, "write %s: %s", tmp, errno_name(rc));
        goto fail;
    }
    if (fsync(fd) != 0) {
        rc = ERR(err, errno, "fsync %s: %s", tmp, errno_name(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = ERR(err, errno, "close %s: %s", tmp, errno_name(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = ERR(err, errno, "rename %s: %s", path, errno_name(errno));
        goto fail;
    }
    return fileio_fsync_parent(path, err);
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return rc;
}

int fileio_read_file(const char *path, size_t max, uint8_t **data_out, size_t *len_out,
                     struct err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ERR(err, errno, "open %s: %s", path, errno_name(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ERR(err, e, "stat %s: %s", path, errno_name(e));
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return ERR(err, EMSGSIZE, "%s: %lld bytes, more than %zu", path, (long long)st.st_size,
                   max);
    }
    size_t len = (size_t)st.st_size;
    uint8_t *p = malloc(len + 1);
    if (p == NULL) {
        close(fd);
        return ERR(err, ENOMEM, "read %s: out of memory", path);
    }
    size_t got = 0;
    int rc = fileio_pread_full(fd, p, len, 0, &got);
    close(fd);
    if (rc) {
        free(p);
        return ERR(err, rc, "read %s: %s", path, errno_name(rc));
    }
    p[got] = 0;
    *data_out = p;
    *len_out = got;
    return 0;
}

int fileio_mkdir_p(const char *path, mode_t mode, struct err *err)
{
    char p[PATH_MAX];
    if ((size_t)snprintf(p, sizeof p, "%s", path) >= sizeof p)
        return ERR(err, ENAMETOOLONG, "path too long: %s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST)
            return ERR(err, errno, "mkdir %s: %s", p, errno_name(errno));
        *s = '/';
    }
    if (mkdir(p, mode) != 0 && errno != EEXIST)
        return ERR(err, errno, "mkdir %s: %s", p, errno_name(errno));
    return 0;
}

static int rm_rf_at(int parent, const char *name, struct err *err)
{
    if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return ERR(err, errno, "unlink %s: %s", name, errno_name(errno));
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ERR(err, errno, "open %s: %s", name, errno_name(errno));
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return ERR(err, errno, "opendir %s: %s", name, errno_name(errno));
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        rc = rm_rf_at(dirfd(d), de->d_name, err);
    }
    closedir(d);
    if (rc == 0 && unlinkat(parent, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
        rc = ERR(err, errno, "rmdir %s: %s", name, errno_name(errno));
    return rc;
}

int fileio_rm_rf(const char *path, struct err *err)
{
    return rm_rf_at(AT_FDCWD, path, err);
}

void fileio_stdio_to_null(void)
{
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);

    if (null < 0)
        return;
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO)
        close(null);
}
