/* fs/unmount.c - bottomlessfs -u MOUNTPOINT: see unmount.h. */
#include "fs/unmount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "fs/config.h"
#include "fs/fs.h"
#include "fs/stagelock.h"

#define SOURCE_PREFIX "bottomlessfs:"

/* Decodes mountinfo's octal escapes (\040 for a space, ...) in place. */
static void mountinfo_unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r != '\0'; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* The topmost mount at mp in /proc/self/mountinfo: its type and source. ENOENT: none. */
static int mount_find(const char *mp, char *type, size_t type_cap, char *source,
                      size_t source_cap, struct err *err)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return ERR(err, errno, "cannot read /proc/self/mountinfo: %s", errno_name(errno));
    char *line = NULL;
    size_t cap = 0;
    bool found = false;
    while (getline(&line, &cap, f) > 0) {
        /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPEROPTIONS */
        char *save = NULL, *field[5];
        int n = 0;
        for (char *t = strtok_r(line, " \n", &save); t != NULL && n < 5;
             t = strtok_r(NULL, " \n", &save))
            field[n++] = t;
        if (n < 5)
            continue;
        mountinfo_unescape(field[4]);
        if (strcmp(field[4], mp) != 0)
            continue;
        char *t = NULL;
        while ((t = strtok_r(NULL, " \n", &save)) != NULL && strcmp(t, "-") != 0)
            ;
        char *ty = t ? strtok_r(NULL, " \n", &save) : NULL;
        char *src = ty ? strtok_r(NULL, " \n", &save) : NULL;
        if (src == NULL)
            continue;
        mountinfo_unescape(ty);
        mountinfo_unescape(src);
        snprintf(type, type_cap, "%s", ty);
        snprintf(source, source_cap, "%s", src);
        found = true; /* keep going: a later line is mounted over this one */
    }
    free(line);
    fclose(f);
    return found ? 0 : ENOENT;
}

/* The daemon names its BACKING_DIR in MOUNTPOINT/.bottomless/status ("backing_dir", a JSON
 * string near the top), for a mount whose source does not (-o fsname=NAME). false: no such
 * file or field, or not an absolute path. */
static bool backing_from_status(const char *mp, char *out, size_t cap)
{
    static const char key[] = "\"backing_dir\":\"";
    char path[PATH_MAX + 64], buf[8192];
    size_t len = 0, k = 0;

    snprintf(path, sizeof(path), "%s/%s/%s", mp, FS_STAGING_NAME, FS_STATUS_FILE_NAME);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    for (ssize_t n; len + 1 < sizeof(buf); len += (size_t)n)
        if ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) <= 0)
            break;
    close(fd);
    buf[len] = '\0';
    const char *p = strstr(buf, key);
    if (p == NULL)
        return false;
    for (p += strlen(key); *p != '\0' && *p != '"'; p++) {
        char c = *p;
        if (c == '\\') {
            unsigned v;
            switch (*++p) {
            case '"': case '\\': case '/': c = *p; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u': /* status_json_string escapes only control bytes this way */
                if (sscanf(p + 1, "%4x", &v) != 1 || v == 0 || v > 0x7f)
                    return false;
                c = (char)v;
                p += 4;
                break;
            default:
                return false;
            }
        }
        if (k + 1 >= cap)
            return false;
        out[k++] = c;
    }
    out[k] = '\0';
    return *p == '"' && out[0] == '/';
}

/* fusermount3 -u mp; its own messages go to our stderr. 0 or its exit status. */
static int run_fusermount(const char *mp)
{
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "bottomlessfs: cannot start fusermount3: %s\n", errno_name(errno));
        return 1;
    }
    if (pid == 0) {
        execlp("fusermount3", "fusermount3", "-u", mp, (char *)NULL);
        fprintf(stderr, "bottomlessfs: cannot run fusermount3: %s (install fuse3)\n",
                errno_name(errno));
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return 1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

int fs_unmount_main(int argc, char **argv)
{
    char mp[PATH_MAX], type[64], source[PATH_MAX + 64], staging[PATH_MAX + 96];
    struct err err = {0};

    if (argc != 3 || argv[2][0] == '\0' || strcmp(argv[2], "--help") == 0 ||
        strcmp(argv[2], "-h") == 0) {
        fprintf(argc == 3 && argv[2][0] == '-' ? stdout : stderr,
                "usage: bottomlessfs -u MOUNTPOINT\n"
                "Unmounts MOUNTPOINT (fusermount3 -u), then waits until its daemon has uploaded\n"
                "what is left (at most its flush_timeout). Exit status 0: everything committed\n"
                "is in S3; 1: not unmounted, or some of it stays staged for the next mount.\n");
        return argc == 3 && argv[2][0] == '-' ? 0 : 1;
    }
    if (realpath(argv[2], mp) == NULL) {
        fprintf(stderr, "bottomlessfs: cannot resolve %s: %s%s\n", argv[2], errno_name(errno),
                errno == ENOTCONN ? " (its daemon is gone: fusermount3 -u -z it; the next "
                                    "mount uploads what it staged)"
                                  : "");
        return 1;
    }
    int rc = mount_find(mp, type, sizeof(type), source, sizeof(source), &err);
    if (rc == ENOENT) {
        fprintf(stderr, "bottomlessfs: nothing is mounted at %s\n", mp);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "bottomlessfs: %s\n", err.msg);
        return 1;
    }
    bool ours_by_source = strncmp(source, SOURCE_PREFIX, strlen(SOURCE_PREFIX)) == 0;
    /* fuse.bottomlessfs, or fuse / fuse.NAME (-o subtype=NAME) with a source of ours */
    bool fuse_type = strcmp(type, "fuse") == 0 || strncmp(type, "fuse.", 5) == 0;
    if (strcmp(type, "fuse.bottomlessfs") != 0 && !(fuse_type && ours_by_source)) {
        fprintf(stderr, "bottomlessfs: %s is a %s mount of %s, not bottomlessfs: left alone\n",
                mp, type, source);
        return 1;
    }
    /* Our source names BACKING_DIR (fs/config.c), unless -o fsname replaced it (the status
     * file names it then); mount.fuse3 may pass the fstab source, the directory itself. */
    char from_status[PATH_MAX];
    const char *backing = ours_by_source ? source + strlen(SOURCE_PREFIX) : source;
    if (!ours_by_source && source[0] != '/' &&
        backing_from_status(mp, from_status, sizeof(from_status)))
        backing = from_status;
    snprintf(staging, sizeof(staging), "%s/%s", backing, FS_STAGING_NAME);
    struct stagelock_holder h;
    int fd = backing[0] == '/' ? stagelock_open_note(staging, &h, &err) : -1;
    if (fd < 0 || h.state != STAGELOCK_SERVING || strcmp(h.mountpoint, mp) != 0) {
        if (fd >= 0)
            close(fd);
        /* -o noreplicate (no staging area), or a mount we cannot tie to its daemon */
        rc = run_fusermount(mp);
        if (rc != 0)
            return 1;
        printf("bottomlessfs: %s unmounted (no replicating daemon found for it: nothing to "
               "wait for)\n",
               mp);
        return 0;
    }
    if (run_fusermount(mp) != 0) {
        fprintf(stderr, "bottomlessfs: %s is still mounted (fusermount3 says why above: a "
                        "process using it? see fuser -m %s)\n",
                mp, mp);
        close(fd);
        return 1;
    }
    long pid = h.pid;
    if (stagelock_wait_free(fd, pid, &h, 1000) == ETIMEDOUT) {
        fprintf(stderr, "bottomlessfs: %s is unmounted; waiting for bottomlessfs pid %ld to "
                        "upload what is left (at most its flush_timeout)\n",
                mp, pid);
        stagelock_wait_free(fd, pid, &h, STAGELOCK_FOREVER);
    }
    close(fd);
    if (h.state == STAGELOCK_EXITED) {
        printf("bottomlessfs: %s unmounted; everything committed is in S3\n", mp);
        return 0;
    }
    if (h.state == STAGELOCK_EXITED_UNFLUSHED)
        fprintf(stderr, "bottomlessfs: %s unmounted, but not everything committed reached S3 "
                        "within flush_timeout: the rest stays staged in %s and goes up at the "
                        "next mount of %s (the daemon's log names it: 'replica: not "
                        "uploaded')\n",
                mp, staging, backing);
    else
        fprintf(stderr, "bottomlessfs: %s unmounted, but bottomlessfs pid %ld ended before "
                        "its uploads finished (killed?): what it staged goes up at the next "
                        "mount of %s\n",
                mp, pid, backing);
    return 1;
}
