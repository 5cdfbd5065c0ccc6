/* fs/config.c - command line and environment -> struct fs_config (see fs/config.h). The only
 * file of fs/ that reads the environment. Our -o keys are taken out with fuse_opt; every other
 * -o option is handed to libfuse, which rejects unknown ones with a message. */
#include "fs/config.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <fuse_opt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "common/err.h"
#include "fs/cpulatency.h"

#define FS_VERSION "0.1.0"

/* String values as given (-o wins over the environment; parsed after). */
struct raw_opts {
    char *endpoint;
    char *bucket;
    char *region;
    char *ca_file;
    char *compression;
    char *batch_interval;
    char *batch_max_frames;
    char *writeback_ms;
    char *flush_timeout;
    char *durable_timeout;
    char *snapshot_max_gens;
    char *snapshot_wal_pct;
    char *snapshot_wal_min;
    char *list_ttl;
    char *lease_ttl;
    char *log_level;
    char *workers;
    char *spin_us;
    int insecure_tls;
    int durable;
    int noreplicate;
    int noxattr;
    int xattr;
    int nowalcache;
    int nocpu_latency;
    int gen_per_checkpoint;
    int cpu_latency;
    int writeback;
    int allow_other;
    int foreground;
    int debug;
    int help;
    int version;
    int n_positional;
    char *positional[2];
    struct fuse_args pass; /* options for libfuse */
};

enum { KEY_FOREGROUND, KEY_DEBUG, KEY_HELP, KEY_VERSION, KEY_ALLOW_OTHER };

#define RAW(t, f) {t, offsetof(struct raw_opts, f), 1}
#define RAWS(t, f) {t, offsetof(struct raw_opts, f), 0}
static const struct fuse_opt fs_opt_spec[] = {
    RAWS("endpoint=%s", endpoint),
    RAWS("bucket=%s", bucket),
    RAWS("region=%s", region),
    RAWS("ca_file=%s", ca_file),
    RAWS("compression=%s", compression),
    RAWS("batch_interval=%s", batch_interval),
    RAWS("batch_max_frames=%s", batch_max_frames),
    RAWS("writeback=%s", writeback_ms),
    RAWS("flush_timeout=%s", flush_timeout),
    RAWS("durable_timeout=%s", durable_timeout),
    RAWS("snapshot_max_gens=%s", snapshot_max_gens),
    RAWS("snapshot_wal_pct=%s", snapshot_wal_pct),
    RAWS("snapshot_wal_min=%s", snapshot_wal_min),
    RAWS("list_ttl=%s", list_ttl),
    RAWS("lease_ttl=%s", lease_ttl),
    RAWS("log_level=%s", log_level),
    RAWS("workers=%s", workers),
    RAWS("spin_us=%s", spin_us),
    RAW("insecure_tls", insecure_tls),
    RAW("durable", durable),
    RAW("noreplicate", noreplicate),
    RAW("noxattr", noxattr),
    RAW("xattr", xattr),
    RAW("nowalcache", nowalcache),
    RAW("nocpu_latency", nocpu_latency),
    RAW("generation_per_checkpoint", gen_per_checkpoint),
    RAW("cpu_latency", cpu_latency),
    RAW("writeback", writeback),
    FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
    FUSE_OPT_KEY("-f", KEY_FOREGROUND),
    FUSE_OPT_KEY("-d", KEY_DEBUG),
    FUSE_OPT_KEY("debug", KEY_DEBUG),
    FUSE_OPT_KEY("-h", KEY_HELP),
    FUSE_OPT_KEY("--help", KEY_HELP),
    FUSE_OPT_KEY("-V", KEY_VERSION),
    FUSE_OPT_KEY("--version", KEY_VERSION),
    FUSE_OPT_END,
};

static int fs_opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    struct raw_opts *r = data;

    (void)outargs;
    switch (key) {
    case FUSE_OPT_KEY_NONOPT:
        if (r->n_positional < 2) {
            r->positional[r->n_positional] = strdup(arg);
        }
        r->n_positional++;
        return 0;
    case FUSE_OPT_KEY_OPT: /* a -o option of libfuse's (or unknown: libfuse will say) */
        if (arg[0] == '-') {
            fprintf(stderr, "bottomlessfs: unknown option %s (see --help)\n", arg);
            return -1;
        }
        if (fuse_opt_add_arg(&r->pass, "-o") != 0 || fuse_opt_add_arg(&r->pass, arg) != 0)
            return -1;
        return 0;
    case KEY_ALLOW_OTHER:
        r->allow_other = 1;
        return 0;
    case KEY_FOREGROUND:
        r->foreground = 1;
        return 0;
    case KEY_DEBUG:
        r->debug = 1;
        return 0;
    case KEY_HELP:
        r->help = 1;
        return 0;
    case KEY_VERSION:
        r->version = 1;
        return 0;
    default:
        /* "-x" style options we don't know */
        fprintf(stderr, "bottomlessfs: unknown option %s (see --help)\n", arg);
        return -1;
    }
}

void fs_config_usage(const char *prog)
{
    printf(
        "usage: %s [-f] [-d] [-o OPTION[,OPTION...]] BACKING_DIR MOUNTPOINT\n"
        "       %s -u MOUNTPOINT\n"
        "\n"
        "Mounts a view of BACKING_DIR at MOUNTPOINT. Every SQLite database in it is replicated\n"
        "to S3 in the libSQL bottomless layout; databases that exist only in the bucket are\n"
        "listed and restored when opened.\n"
        "MOUNTPOINT must be outside BACKING_DIR (and BACKING_DIR outside MOUNTPOINT).\n"
        "\n"
        "general options:\n"
        "  -u, --unmount MOUNTPOINT  unmount (fusermount3 -u), then wait until the daemon\n"
        "                         has uploaded what is left; exit 0 only when everything\n"
        "                         committed is in S3 (fusermount3 -u returns before that)\n"
        "  -h, --help             this text\n"
        "  -V, --version          print the version\n"
        "  -f                     stay in the foreground (SIGTERM/SIGINT unmount cleanly)\n"
        "  -d, -o debug           trace every FUSE request on stderr (implies -f)\n"
        "  -o log_level=LEVEL     error|warn|info|debug|trace [BOTTOMLESS_LOG] (default info);\n"
        "                         logs go to stderr in the foreground, to syslog once\n"
        "                         daemonised\n"
        "  -o workers=N           threads for fsync, restores and listings (default %u)\n"
        "  -o spin_us=N           after each request, poll /dev/fuse for N microseconds\n"
        "                         before sleeping (default %u; 0 = libfuse's loop)\n"
        "  -o xattr               extended attributes on: every write(2) then costs an extra\n"
        "                         GETXATTR(security.capability) request (libfuse 3.14 cannot\n"
        "                         negotiate HANDLE_KILLPRIV_V2), 2 per SQLite transaction:\n"
        "                         ~1.8x the FUSE requests, write tx/s about halved\n"
        "  -o noxattr             no extended attributes (the default): xattr calls fail\n"
        "                         (ENOTSUP/EOPNOTSUPP) and the kernel stops asking\n"
        "  -o nowalcache          do not read each -wal through the mount after a WAL\n"
        "                         restart (by default a thread does, once per WAL, so the\n"
        "                         kernel sends each frame write as one request, not two)\n"
        "  -o nocpu_latency       never ask the kernel to keep idle CPUs polling. By default,\n"
        "                         while the mount serves at least %u requests/s, the daemon\n"
        "                         holds a 0 us request on /dev/cpu_dma_latency (root only):\n"
        "                         waking a halted CPU costs up to ~90 us per FUSE request on\n"
        "                         VMs without halt-polling (README \"Performance\")\n"
        "\n"
        "replication options (environment variable in brackets; -o wins):\n"
        "  -o endpoint=URL        S3 endpoint [LIBSQL_BOTTOMLESS_ENDPOINT]\n"
        "  -o bucket=NAME         bucket [LIBSQL_BOTTOMLESS_BUCKET] (default bottomless)\n"
        "  -o region=NAME         region [AWS_REGION, LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION]\n"
        "                         credentials (never as options): first\n"
        "                         LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID and\n"
        "                         LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY, then AWS_*,\n"
        "                         then ~/.aws/credentials (profile AWS_PROFILE)\n"
        "  -o batch_interval=SECS upload a batch at least this often\n"
        "                         [LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS] (default 1)\n"
        "  -o batch_max_frames=N  frames per batch [LIBSQL_BOTTOMLESS_BATCH_MAX_FRAMES]\n"
        "                         (default %u)\n"
        "  -o compression=C       zstd|gzip|none [LIBSQL_BOTTOMLESS_COMPRESSION] (default zstd)\n"
        "  -o durable             an fsync/fdatasync of a -wal returns only once every\n"
        "                         transaction committed before it is stored in S3; apps need\n"
        "                         PRAGMA synchronous=FULL for per-commit durability\n"
        "  -o durable_timeout=SECS  then the fsync fails with EIO (default %u)\n"
        "  -o writeback[=MS]      kernel writeback cache (fast); dirty -wal pages are pushed\n"
        "                         to the daemon every MS ms (default %u). If the daemon is\n"
        "                         killed, up to MS of synchronous=NORMAL commits are lost\n"
        "                         (FULL commits never are). Needs synchronous=NORMAL or\n"
        "                         FULL: with OFF the backup is exact only once the app\n"
        "                         closes the database\n"
        "  -o flush_timeout=SECS  at unmount, wait this long for uploads (default %u)\n"
        "  -o snapshot_max_gens=N new snapshot after N generations without one (default %u)\n"
        "  -o snapshot_wal_pct=P  ...or when WAL shipped since the last snapshot exceeds P%% of\n"
        "                         the database size (default %u)\n"
        "  -o snapshot_wal_min=MIB  ...and MIB MiB (default %u; 0: no floor)\n"
        "  -o generation_per_checkpoint  start a generation at every WAL restart, as libSQL\n"
        "                         does (default: a restart continues the generation until a\n"
        "                         snapshot is due)\n"
        "  -o list_ttl=SECS       cache of the bucket listing for lazy restore (default %u)\n"
        "  -o lease_ttl=SECS      writer lease of each database (<db>.lease, renewed every\n"
        "                         third of it while the database is written, given up after\n"
        "                         SECS without a commit); another machine waits this long\n"
        "                         for the lease of a daemon that died (default %u, min %u)\n"
        "  -o ca_file=PATH        CA bundle for an https endpoint\n"
        "  -o insecure_tls        do not verify the endpoint's TLS certificate\n"
        "  -o noreplicate         plain passthrough: no S3 at all\n"
        "\n"
        "FUSE options (passed to libfuse): allow_other, default_permissions (always on),\n"
        "  fsname=NAME, subtype=NAME, max_read=N, ro, rw, dev, nodev, suid, nosuid, exec,\n"
        "  noexec, atime, noatime, ...\n"
        "\n"
        "/etc/fstab (mount(8) runs helpers with PATH=/sbin:/bin:/usr/sbin:/usr/bin, so either\n"
        "install bottomlessfs there or name it with its full path and type fuse):\n"
        "  /srv/data  /mnt/data  fuse.bottomlessfs  bucket=mydbs,allow_other,_netdev  0  0\n"
        "  /usr/local/bin/bottomlessfs#/srv/data  /mnt/data  fuse  bucket=mydbs,_netdev  0  0\n"
        "Credentials and other variables for fstab mounts: set them in the environment of\n"
        "mount (e.g. a systemd drop-in for the .mount unit).\n"
        "\n"
        "MOUNTPOINT/.bottomless/status is a read-only JSON view of every database's replication\n"
        "state. BACKING_DIR/.bottomless is the replicator's staging area and is hidden.\n",
        prog, prog, FS_DEFAULT_WORKERS, FS_DEFAULT_SPIN_US, CPULAT_DEFAULT_MIN_RATE,
        FS_DEFAULT_BATCH_MAX_FRAMES, FS_DEFAULT_DURABLE_TIMEOUT_MS / 1000, FS_DEFAULT_WRITEBACK_MS,
        FS_DEFAULT_FLUSH_TIMEOUT_MS / 1000, FS_DEFAULT_SNAPSHOT_MAX_GENS,
        FS_DEFAULT_SNAPSHOT_WAL_PCT, FS_DEFAULT_SNAPSHOT_WAL_MIN_MIB,
        FS_DEFAULT_LIST_TTL_MS / 1000, FS_DEFAULT_LEASE_TTL_MS / 1000,
        FS_MIN_LEASE_TTL_MS / 1000);
}

/* "-o" value, else the first set environment variable, else NULL. */
static const char *pick(const char *opt, const char *env1, const char *env2)
{
    const char *v;

    if (opt != NULL)
        return opt;
    v = env1 != NULL ? getenv(env1) : NULL;
    if (v != NULL && v[0] != '\0')
        return v;
    v = env2 != NULL ? getenv(env2) : NULL;
    if (v != NULL && v[0] != '\0')
        return v;
    return NULL;
}

static int dup_opt(char **out, const char *v, struct err *err)
{
    if (v == NULL)
        return 0;
    *out = strdup(v);
    if (*out == NULL)
        return ERR(err, ENOMEM, "config: out of memory");
    return 0;
}

static int parse_u32(const char *name, const char *v, uint32_t min, uint32_t *out,
                     struct err *err)
{
    char *end = NULL;
    unsigned long long x;

    if (v == NULL)
        return 0;
    errno = 0;
    x = strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x > UINT32_MAX || x < min)
        return ERR(err, EINVAL, "invalid %s=%s: expected an integer >= %u", name, v, min);
    *out = (uint32_t)x;
    return 0;
}

/* Seconds (decimals allowed) -> milliseconds. */
static int parse_secs(const char *name, const char *v, uint32_t *out_ms, struct err *err)
{
    char *end = NULL;
    double x;

    if (v == NULL)
        return 0;
    errno = 0;
    x = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !(x >= 0) || x > 4.0e6)
        return ERR(err, EINVAL, "invalid %s=%s: expected seconds, e.g. 1 or 0.5", name, v);
    *out_ms = (uint32_t)(x * 1000.0 + 0.5);
    return 0;
}

static int canon_dir(const char *what, const char *path, char **out, struct err *err)
{
    struct stat st;
    char *real = realpath(path, NULL);

    if (real == NULL)
        return ERR(err, errno, "%s %s: %s", what, path,
                   errno == ENOENT ? "no such directory" : errno_name(errno));
    int rc = stat(real, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    /* The kernel may answer stat from its cache for a FUSE mount whose daemon died; statfs
     * always asks the daemon (a mount stacked over a dead one hid it until the next -u). */
    struct statfs sfs;
    if (rc == 0 && statfs(real, &sfs) != 0 && errno == ENOTCONN)
        rc = ENOTCONN;
    if (rc != 0) {
        free(real);
        return ERR(err, rc, "%s %s: %s", what, path,
                   rc == ENOTCONN  ? "a dead FUSE mount is still there: run fusermount3 -u -z on it"
                   : rc == ENOTDIR ? "not a directory"
                                   : errno_name(rc));
    }
    *out = real;
    return 0;
}

/* Whether dir (a canonical path) is st or lies below it: compared by device and inode on the
 * way up, so a bind mount or symlinked alias of the same directory counts too. */
static bool dir_within(const char *dir, const struct stat *st)
{
    char *p = strdup(dir);
    bool within = false;

    if (p == NULL)
        return false;
    for (;;) {
        struct stat cur;
        if (stat(p, &cur) == 0 && cur.st_dev == st->st_dev && cur.st_ino == st->st_ino) {
            within = true;
            break;
        }
        char *slash = strrchr(p, '/');
        if (slash == NULL || (slash == p && p[1] == '\0'))
            break;
        slash[slash == p ? 1 : 0] = '\0'; /* "/a" -> "/", "/a/b" -> "/a" */
    }
    free(p);
    return within;
}

/* The daemon reaches BACKING_DIR (its staging area too) by path, so a mount that covers it, or a
 * backing directory that the mount would hide, sends the daemon's own calls back to itself: it
 * would hang in its first mkdir. Refused before anything is mounted. */
static int dirs_apart(const char *backing, const char *mnt, struct err *err)
{
    struct stat bst, mst;

    if (stat(backing, &bst) != 0 || stat(mnt, &mst) != 0)
        return 0; /* canon_dir has just checked both */
    if (bst.st_dev == mst.st_dev && bst.st_ino == mst.st_ino)
        return ERR(err, EINVAL,
                   "mountpoint %s is the backing directory: the daemon keeps its files there and "
                   "cannot mount over them; mount at another directory (e.g. bottomlessfs %s "
                   "/mnt/data) and point the app at the mount",
                   mnt, backing);
    if (dir_within(mnt, &bst))
        return ERR(err, EINVAL,
                   "mountpoint %s is inside the backing directory %s: the mount would appear in "
                   "its own view; choose a mountpoint outside %s",
                   mnt, backing, backing);
    if (dir_within(backing, &mst))
        return ERR(err, EINVAL,
                   "backing directory %s is inside the mountpoint %s: the mount would hide it "
                   "from the daemon; keep the backing directory outside %s",
                   backing, mnt, mnt);
    return 0;
}

static int fs_config_fill(struct fs_config *cfg, struct raw_opts *r, struct err *err)
{
    int rc = 0;
    const char *compression;

    cfg->foreground = r->foreground || r->debug;
    cfg->debug = r->debug;
    cfg->allow_other = r->allow_other;
    cfg->noreplicate = r->noreplicate;
    cfg->noxattr = r->noxattr ? true : r->xattr ? false : FS_DEFAULT_NOXATTR;
    cfg->nowalcache = r->nowalcache;
    cfg->gen_per_checkpoint = r->gen_per_checkpoint;
    cfg->cpu_latency = r->nocpu_latency ? false : r->cpu_latency ? true : FS_DEFAULT_CPU_LATENCY;
    cfg->durable = r->durable;
    cfg->insecure_tls = r->insecure_tls;
    cfg->writeback = r->writeback || r->writeback_ms != NULL;
    cfg->n_workers = FS_DEFAULT_WORKERS;
    cfg->batch_interval_ms = FS_DEFAULT_BATCH_INTERVAL_MS;
    cfg->batch_max_frames = FS_DEFAULT_BATCH_MAX_FRAMES;
    cfg->writeback_ms = FS_DEFAULT_WRITEBACK_MS;
    cfg->flush_timeout_ms = FS_DEFAULT_FLUSH_TIMEOUT_MS;
    cfg->durable_timeout_ms = FS_DEFAULT_DURABLE_TIMEOUT_MS;
    cfg->snapshot_max_gens = FS_DEFAULT_SNAPSHOT_MAX_GENS;
    cfg->snapshot_wal_pct = FS_DEFAULT_SNAPSHOT_WAL_PCT;
    cfg->snapshot_wal_min_mib = FS_DEFAULT_SNAPSHOT_WAL_MIN_MIB;
    cfg->list_ttl_ms = FS_DEFAULT_LIST_TTL_MS;
    cfg->lease_ttl_ms = FS_DEFAULT_LEASE_TTL_MS;

    uint32_t spin = FS_DEFAULT_SPIN_US;
    rc = parse_u32("spin_us", r->spin_us, 0, &spin, err);
    if (rc == 0 && spin > 10000)
        rc = ERR(err, EINVAL, "invalid spin_us=%u: at most 10000", spin);
    cfg->spin_us = spin;
    uint32_t workers = cfg->n_workers;
    rc = rc ? rc : parse_u32("workers", r->workers, 1, &workers, err);
    cfg->n_workers = workers;
    if (rc == 0 && workers > 64)
        rc = ERR(err, EINVAL, "invalid workers=%u: at most 64", workers);
    rc = rc ? rc
            : parse_secs("batch_interval",
                         pick(r->batch_interval, "LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS", NULL),
                         &cfg->batch_interval_ms, err);
    rc = rc ? rc
            : parse_u32("batch_max_frames",
                        pick(r->batch_max_frames, "LIBSQL_BOTTOMLESS_BATCH_MAX_FRAMES", NULL), 1,
                        &cfg->batch_max_frames, err);
    rc = rc ? rc : parse_u32("writeback", r->writeback_ms, 1, &cfg->writeback_ms, err);
    rc = rc ? rc : parse_secs("flush_timeout", r->flush_timeout, &cfg->flush_timeout_ms, err);
    rc = rc ? rc
            : parse_secs("durable_timeout", r->durable_timeout, &cfg->durable_timeout_ms, err);
    rc = rc ? rc
            : parse_u32("snapshot_max_gens", r->snapshot_max_gens, 1, &cfg->snapshot_max_gens,
                        err);
    rc = rc ? rc
            : parse_u32("snapshot_wal_pct", r->snapshot_wal_pct, 1, &cfg->snapshot_wal_pct, err);
    rc = rc ? rc
            : parse_u32("snapshot_wal_min", r->snapshot_wal_min, 0, &cfg->snapshot_wal_min_mib,
                        err);
    rc = rc ? rc : parse_secs("list_ttl", r->list_ttl, &cfg->list_ttl_ms, err);
    rc = rc ? rc : parse_secs("lease_ttl", r->lease_ttl, &cfg->lease_ttl_ms, err);
    if (rc != 0)
        return rc;
    if (cfg->lease_ttl_ms < FS_MIN_LEASE_TTL_MS)
        return ERR(err, EINVAL, "invalid lease_ttl=%s: at least %u seconds", r->lease_ttl,
                   FS_MIN_LEASE_TTL_MS / 1000);
    if (cfg->batch_interval_ms == 0)
        return ERR(err, EINVAL, "invalid batch_interval: must be > 0");

    compression = pick(r->compression, "LIBSQL_BOTTOMLESS_COMPRESSION", NULL);
    if (compression == NULL)
        compression = FS_DEFAULT_COMPRESSION;
    if (strcmp(compression, "raw") == 0)
        compression = "none";
    if (strcmp(compression, "gz") == 0)
        compression = "gzip";
    if (strcmp(compression, "zstd") != 0 && strcmp(compression, "gzip") != 0 &&
        strcmp(compression, "none") != 0)
        return ERR(err, EINVAL, "invalid compression=%s: use zstd, gzip or none", compression);
    rc = dup_opt(&cfg->compression, compression, err);
    rc = rc ? rc
            : dup_opt(&cfg->endpoint, pick(r->endpoint, "LIBSQL_BOTTOMLESS_ENDPOINT", NULL), err);
    rc = rc ? rc : dup_opt(&cfg->bucket, pick(r->bucket, "LIBSQL_BOTTOMLESS_BUCKET", NULL), err);
    rc = rc ? rc
            : dup_opt(&cfg->region,
                      pick(r->region, "AWS_REGION", "LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION"), err);
    rc = rc ? rc : dup_opt(&cfg->ca_file, r->ca_file, err);
    const char *level = pick(r->log_level, cfg->debug ? NULL : "BOTTOMLESS_LOG", NULL);
    level = level != NULL ? level : cfg->debug ? "debug" : "info";
    if (rc == 0 && strcmp(level, "error") != 0 && strcmp(level, "warn") != 0 &&
        strcmp(level, "info") != 0 && strcmp(level, "debug") != 0 && strcmp(level, "trace") != 0)
        rc = ERR(err, EINVAL,
                 "invalid log_level=%s (-o log_level, BOTTOMLESS_LOG): use error, warn, info, "
                 "debug or trace",
                 level);
    rc = rc ? rc : dup_opt(&cfg->log_level, level, err);
    return rc;
}

/* argv for libfuse: prog, our fixed options, the passed-through ones, -d. */
static int fs_config_fuse_args(struct fs_config *cfg, struct raw_opts *r, const char *prog,
                               struct err *err)
{
    struct fuse_args a = FUSE_ARGS_INIT(0, NULL);
    char fsname[8192];
    size_t k = (size_t)snprintf(fsname, sizeof(fsname), "fsname=bottomlessfs:");

    for (const char *p = cfg->backing_dir; *p != '\0'; p++) { /* escape ',' and '\' */
        if (k + 3 >= sizeof(fsname))
            return ERR(err, ENAMETOOLONG, "backing directory path too long");
        if (*p == ',' || *p == '\\')
            fsname[k++] = '\\';
        fsname[k++] = *p;
    }
    fsname[k] = '\0';
    if (fuse_opt_add_arg(&a, prog) != 0 || fuse_opt_add_arg(&a, "-o") != 0 ||
        fuse_opt_add_arg(&a, "default_permissions,subtype=bottomlessfs") != 0 ||
        fuse_opt_add_arg(&a, "-o") != 0 || fuse_opt_add_arg(&a, fsname) != 0)
        goto nomem;
    if (cfg->allow_other &&
        (fuse_opt_add_arg(&a, "-o") != 0 || fuse_opt_add_arg(&a, "allow_other") != 0))
        goto nomem;
    for (int i = 1; i < r->pass.argc; i++) {
        if (fuse_opt_add_arg(&a, r->pass.argv[i]) != 0)
            goto nomem;
    }
    if (cfg->debug && fuse_opt_add_arg(&a, "-d") != 0)
        goto nomem;
    cfg->fuse_argc = a.argc;
    cfg->fuse_argv = a.argv;
    return 0;
nomem:
    fuse_opt_free_args(&a);
    return ERR(err, ENOMEM, "config: out of memory");
}

int fs_config_parse(struct fs_config *cfg, int argc, char **argv, bool *exit_now_out,
                    struct err *err)
{
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct raw_opts r;
    const char *prog = argc > 0 ? argv[0] : "bottomlessfs";
    int rc = 0;

    memset(cfg, 0, sizeof(*cfg));
    memset(&r, 0, sizeof(r));
    *exit_now_out = false;
    if (fuse_opt_add_arg(&r.pass, prog) != 0)
        return ERR(err, ENOMEM, "config: out of memory");
    if (fuse_opt_parse(&args, &r, fs_opt_spec, fs_opt_proc) != 0) {
        rc = ERR(err, EINVAL, "bad command line (see %s --help)", prog);
        goto out;
    }
    if (r.help) {
        fs_config_usage(prog);
        *exit_now_out = true;
        goto out;
    }
    if (r.version) {
        printf("bottomlessfs %s (libfuse %d)\n", FS_VERSION, fuse_version());
        *exit_now_out = true;
        goto out;
    }
    if (r.n_positional != 2) {
        rc = ERR(err, EINVAL, "expected BACKING_DIR and MOUNTPOINT, got %d argument%s (see %s "
                              "--help)",
                 r.n_positional, r.n_positional == 1 ? "" : "s", prog);
        goto out;
    }
    rc = canon_dir("backing directory", r.positional[0], &cfg->backing_dir, err);
    rc = rc ? rc : canon_dir("mountpoint", r.positional[1], &cfg->mountpoint, err);
    rc = rc ? rc : dirs_apart(cfg->backing_dir, cfg->mountpoint, err);
    rc = rc ? rc : fs_config_fill(cfg, &r, err);
    rc = rc ? rc : fs_config_fuse_args(cfg, &r, prog, err);
out:
    fuse_opt_free_args(&args);
    fuse_opt_free_args(&r.pass);
    free(r.positional[0]);
    free(r.positional[1]);
    char **strs[] = {&r.endpoint,          &r.bucket,           &r.region,
                     &r.ca_file,           &r.compression,      &r.batch_interval,
                     &r.batch_max_frames,  &r.writeback_ms,     &r.flush_timeout,
                     &r.durable_timeout,   &r.snapshot_max_gens, &r.snapshot_wal_pct,
                     &r.snapshot_wal_min,  &r.list_ttl,         &r.log_level,
                     &r.workers,           &r.spin_us,          &r.lease_ttl};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        free(*strs[i]);
    if (rc != 0)
        fs_config_free(cfg);
    return rc;
}

void fs_config_free(struct fs_config *cfg)
{
    if (cfg == NULL)
        return;
    free(cfg->backing_dir);
    free(cfg->mountpoint);
    free(cfg->log_level);
    free(cfg->endpoint);
    free(cfg->bucket);
    free(cfg->region);
    free(cfg->ca_file);
    free(cfg->compression);
    struct fuse_args a = FUSE_ARGS_INIT(cfg->fuse_argc, cfg->fuse_argv);
    a.allocated = cfg->fuse_argv != NULL;
    fuse_opt_free_args(&a);
    memset(cfg, 0, sizeof(*cfg));
}
