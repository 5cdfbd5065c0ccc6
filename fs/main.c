/* fs/main.c - the bottomlessfs daemon: parse options, build the filesystem, mount, daemonise,
 * serve with the single-threaded session loop, then unmount and run the shutdown hook.
 * Order (c-style A1/B6): no thread exists before the fork; the kernel mount and the replicator's
 * mount_start run in the child, and the parent exits only when the child reports success or
 * failure through a pipe, so `bottomlessfs ...` returns non-zero on any failed mount (no
 * half-mounted state) and fstab mounts see the real outcome. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fileio.h"
#include "common/log.h"
#include "fs/config.h"
#include "fs/cpulatency.h"
#include "fs/fs.h"
#include "fs/hooks.h"
#include "fs/loop.h"
#include "fs/stagelock.h"
#include "fs/unmount.h"

/* Forks; the parent waits for the child's status byte and exits with it. Returns the write end
 * of the status pipe in the child (or -1 on failure, with err set). */
static int daemon_fork(struct err *err)
{
    int p[2];

    if (pipe2(p, O_CLOEXEC) != 0) {
        ERR(err, errno, "pipe: %s", errno_name(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        ERR(err, errno, "fork: %s", errno_name(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid > 0) {
        unsigned char status = 1;
        close(p[1]);
        ssize_t n;
        do {
            n = read(p[0], &status, 1);
        } while (n < 0 && errno == EINTR);
        _exit(n == 1 ? status : 1);
    }
    close(p[0]);
    if (setsid() < 0)
        LOG_WARN("main: setsid failed errno=%s", errno_name(errno));
    return p[1];
}

/* The child finished starting: detach from the terminal and release the parent. */
static void daemon_ready(int status_fd, unsigned char status)
{
    if (status_fd < 0)
        return;
    if (status == 0) {
        fileio_stdio_to_null();
        if (chdir("/") != 0)
            LOG_WARN("main: chdir / failed");
        log_set_syslog(true);
    }
    ssize_t n;
    do {
        n = write(status_fd, &status, 1);
    } while (n < 0 && errno == EINTR);
    close(status_fd);
}

static int staging_dir_create(const struct fs_config *cfg, char *out, size_t size,
                              struct err *err)
{
    int n = snprintf(out, size, "%s/%s", cfg->backing_dir, FS_STAGING_NAME);

    if (n < 0 || (size_t)n >= size)
        return ERR(err, ENAMETOOLONG, "staging directory path too long");
    if (mkdir(out, 0700) != 0 && errno != EEXIST)
        return ERR(err, errno, "cannot create staging directory %s: %s", out, errno_name(errno));
    return 0;
}

int main(int argc, char **argv)
{
    struct fs_config cfg;
    struct fs_hooks hooks;
    struct err err = {0};
    struct fs *fs = NULL;
    struct fuse_session *se = NULL;
    char staging[4200] = "";
    bool exit_now = false;
    bool mounted = false;
    bool hooks_started = false;
    bool signals_set = false;
    bool flushed = true; /* the shutdown hook's verdict, for bottomlessfs -u (fs/unmount.c) */
    struct cpulat *cpulat = NULL; /* only while the session loop runs */
    int status_fd = -1;
    int lock_fd = -1; /* the staging area's lock, held until the process ends */
    int rc;

    /* A fixed mmap threshold: by default glibc raises it to the largest block freed so far
     * (zstd's workspaces, MiBs) and then serves such blocks from per-thread arenas that keep
     * their peak: 8 MiB per uploader thread, the daemon's RSS up by a third under load. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    if (argc >= 2 && (strcmp(argv[1], "-u") == 0 || strcmp(argv[1], "--unmount") == 0))
        return fs_unmount_main(argc, argv);
    log_init(LOG_LEVEL_INFO, false, "bottomlessfs");
    memset(&hooks, 0, sizeof(hooks));
    rc = fs_config_parse(&cfg, argc, argv, &exit_now, &err);
    if (rc != 0) {
        fprintf(stderr, "bottomlessfs: %s\n", err.msg);
        return 1;
    }
    if (exit_now) {
        fs_config_free(&cfg);
        return 0;
    }
    log_init((enum log_level)log_level_parse(cfg.log_level), false, "bottomlessfs");
    signal(SIGPIPE, SIG_IGN);
    umask(0); /* new entries get exactly mode & ~(caller's umask), computed per request */

    if (!cfg.noreplicate) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = staging_dir_create(&cfg, staging, sizeof(staging), &err);
        if (rc == 0) {
            /* before the mount: a second daemon on this BACKING_DIR fails (or waits for a
             * predecessor's unmount uploads) without touching anything */
            lock_fd = stagelock_take(staging, cfg.flush_timeout_ms + 10000, &err);
            rc = lock_fd < 0 ? (err.code != 0 ? err.code : EIO) : 0;
        }
        if (rc == 0)
            rc = replica_hooks_init(&cfg, &hooks, &err);
        if (rc != 0)
            goto out;
    }
    fs = fs_new(&cfg, &hooks, &err);
    if (fs == NULL) {
        rc = err.code != 0 ? err.code : ENOMEM;
        goto out;
    }
    struct fuse_args fargs = FUSE_ARGS_INIT(cfg.fuse_argc, cfg.fuse_argv);
    se = fuse_session_new(&fargs, &fs_ops, sizeof(fs_ops), fs);
    fuse_opt_free_args(&fargs); /* libfuse's re-parsed copy (cfg still owns the original) */
    if (se == NULL) {
        rc = ERR(&err, EINVAL, "bad FUSE options (libfuse printed the reason above; see --help)");
        goto out;
    }
    fs->se = se;
    if (fuse_set_signal_handlers(se) != 0) {
        rc = ERR(&err, EIO, "cannot install signal handlers");
        goto out;
    }
    signals_set = true;
    if (!cfg.foreground) {
        status_fd = daemon_fork(&err);
        if (status_fd < 0) {
            rc = err.code != 0 ? err.code : EIO;
            goto out;
        }
    }
    if (fuse_session_mount(se, cfg.mountpoint) != 0) {
        rc = ERR(&err, EIO, "cannot mount %s (is it a directory you may mount on? is /dev/fuse "
                            "available?)",
                 cfg.mountpoint);
        goto out;
    }
    mounted = true;
    rc = fs_start(fs, &err);
    if (rc != 0)
        goto out;
    if (hooks.mount_start != NULL) {
        struct fs_hook_env env = {
            .cfg = &cfg,
            .backing_dir = cfg.backing_dir,
            .backing_fd = fs->backing_fd,
            .mountpoint = cfg.mountpoint,
            .staging_dir = staging,
            .inval_path = fs_inval_path,
            .inval_arg = fs,
            .replace_file = fs_replace_file,
            .replace_arg = fs,
        };
        rc = hooks.mount_start(hooks.arg, &env, &err);
        if (rc != 0)
            goto out;
    }
    hooks_started = true;
    daemon_ready(status_fd, 0); /* from here on, logs go to syslog unless -f */
    status_fd = -1;
    stagelock_note(lock_fd, STAGELOCK_SERVING, cfg.mountpoint);
    LOG_INFO("main: mounted backing=%s mountpoint=%s replication=%s writeback=%d",
             cfg.backing_dir, cfg.mountpoint, cfg.noreplicate ? "off" : "on", cfg.writeback);

    if (cfg.cpu_latency) {
        struct err le = {0};
        cpulat = cpulat_new(CPULAT_DEVICE, &fs->stats.requests, CPULAT_DEFAULT_MIN_RATE, &le);
        if (cpulat == NULL)
            LOG_INFO("main: %s: idle CPUs will halt under load (FUSE requests then cost more "
                     "on VMs without halt-polling)", le.msg);
    }
    rc = fs_loop_run(se, cfg.spin_us, &fs->stats);
    cpulat_free(cpulat);
    cpulat = NULL;
    if (rc < 0) {
        LOG_ERR("main: session loop failed errno=%s", errno_name(-rc));
        rc = -rc;
    } else {
        rc = 0;
    }
    LOG_INFO("main: unmounting mountpoint=%s", cfg.mountpoint);
    stagelock_note(lock_fd, STAGELOCK_FLUSHING, cfg.mountpoint); /* a new mount may wait for us */

out:
    if (fs != NULL)
        fs_stop(fs); /* flusher (bounded), then the workers: pending fsyncs reply first */
    if (mounted)
        fuse_session_unmount(se);
    if (fs != NULL)
        fs_release_all(fs); /* handles whose RELEASE never came: hooks.release first */
    if (hooks_started && hooks.shutdown != NULL)
        flushed = hooks.shutdown(hooks.arg) == 0;
    if (rc != 0 && err.code != 0) {
        if (!hooks_started) /* still attached to the caller's terminal */
            fprintf(stderr, "bottomlessfs: %s\n", err.msg);
        else
            LOG_ERR("main: %s", err.msg);
    }
    daemon_ready(status_fd, 1);
    if (signals_set)
        fuse_remove_signal_handlers(se);
    if (se != NULL)
        fuse_session_destroy(se);
    fs_free(fs);
    if (lock_fd >= 0) { /* last: every upload and state file is done */
        stagelock_note(lock_fd, flushed ? STAGELOCK_EXITED : STAGELOCK_EXITED_UNFLUSHED,
                       cfg.mountpoint);
        close(lock_fd);
    }
    fs_config_free(&cfg);
    return rc == 0 ? 0 : 1;
}
