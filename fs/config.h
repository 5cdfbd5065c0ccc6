/* fs/config.h - the daemon's configuration: command line (-o key=value) and environment,
 * parsed in one place (fs/config.c is the only file of fs/ that calls getenv). -o wins over the
 * environment, which wins over the defaults below.
 * Owns:    struct fs_config owns its strings; fs_config_parse() -> fs_config_free().
 *          It also owns the fuse_args left for libfuse (FUSE options we pass through).
 * Threads: parsed once by main before any thread; read-only afterwards (shared freely).
 * Errors:  EINVAL with a message naming the option and the fix. */
#ifndef BFS_FS_CONFIG_H
#define BFS_FS_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define FS_DEFAULT_BATCH_INTERVAL_MS 1000u
#define FS_DEFAULT_BATCH_MAX_FRAMES 10000u
#define FS_DEFAULT_COMPRESSION "zstd"
#define FS_DEFAULT_WRITEBACK_MS 100u
#define FS_DEFAULT_FLUSH_TIMEOUT_MS 60000u
#define FS_DEFAULT_DURABLE_TIMEOUT_MS 30000u
#define FS_DEFAULT_SNAPSHOT_MAX_GENS 20u
#define FS_DEFAULT_SNAPSHOT_WAL_PCT 100u
#define FS_DEFAULT_SNAPSHOT_WAL_MIN_MIB 64u
#define FS_DEFAULT_LIST_TTL_MS 10000u
#define FS_DEFAULT_LEASE_TTL_MS 30000u
#define FS_MIN_LEASE_TTL_MS 3000u
#define FS_DEFAULT_WORKERS 4u
#define FS_DEFAULT_SPIN_US 0u
#define FS_DEFAULT_CPU_LATENCY true /* see fs/cpulatency.h and README "Performance" */
#define FS_DEFAULT_NOXATTR true /* see -o xattr in --help and README "Performance" */
#define FS_STAGING_NAME ".bottomless"

struct fs_config {
    /* Positional arguments, canonical absolute paths. */
    char *backing_dir;
    char *mountpoint;

    /* Process. */
    bool foreground; /* -f */
    bool debug;      /* -d: libfuse request tracing, implies -f and log level debug */
    char *log_level; /* -o log_level=error|warn|info|debug|trace (default info) */
    bool allow_other;
    unsigned n_workers; /* -o workers=N: threads for fsync / restores / listings */
    unsigned spin_us;   /* -o spin_us=N: session loop spins N us before sleeping */
    bool nowalcache;    /* -o nowalcache: no fs/warmer.c (write-through mode only) */
    bool cpu_latency;   /* default, -o nocpu_latency: off; fs/cpulatency.h */
    bool noxattr;       /* default, -o noxattr (-o xattr: off): xattr calls get ENOSYS, so the
                         * kernel stops asking (saves the security.capability GETXATTR it
                         * sends before each write) */

    /* Replication. */
    bool noreplicate;    /* -o noreplicate: pure passthrough, no hooks, no S3 */
    char *endpoint;      /* -o endpoint / LIBSQL_BOTTOMLESS_ENDPOINT; NULL: s3 default */
    char *bucket;        /* -o bucket / LIBSQL_BOTTOMLESS_BUCKET; NULL: s3 default */
    char *region;        /* -o region / AWS_REGION (then LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION) */
    char *ca_file;       /* -o ca_file=PATH: CA bundle for https endpoints */
    bool insecure_tls;   /* -o insecure_tls: skip TLS verification */
    uint32_t batch_interval_ms;   /* -o batch_interval=SECS / LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS */
    uint32_t batch_max_frames;    /* -o batch_max_frames / LIBSQL_BOTTOMLESS_BATCH_MAX_FRAMES */
    char *compression;            /* "zstd" | "gzip" | "none" / LIBSQL_BOTTOMLESS_COMPRESSION */
    bool durable;                 /* -o durable: fsync of a -wal waits for S3 */
    uint32_t durable_timeout_ms;  /* -o durable_timeout=SECS: then fsync returns EIO */
    bool writeback;               /* -o writeback[=MS]: kernel writeback cache + forced flush */
    uint32_t writeback_ms;        /* flush period of live -wal files in writeback mode */
    uint32_t flush_timeout_ms;    /* -o flush_timeout=SECS: bounded flush at unmount */
    uint32_t snapshot_max_gens;   /* -o snapshot_max_gens=N: snapshot after N generations */
    uint32_t snapshot_wal_pct;    /* -o snapshot_wal_pct=P: ...or WAL shipped > P% of db size */
    uint32_t snapshot_wal_min_mib; /* -o snapshot_wal_min=MIB: ...and > MIB */
    bool gen_per_checkpoint;      /* -o generation_per_checkpoint: no generation outlives its
                                     WAL (repl_conf.continue_generations off) */
    uint32_t list_ttl_ms;         /* -o list_ttl=SECS: bucket listing cache for lazy restore */
    uint32_t lease_ttl_ms;        /* -o lease_ttl=SECS: writer lease per database */

    /* FUSE options passed through to libfuse (fsname, subtype, default_permissions, ...). */
    int fuse_argc;
    char **fuse_argv;
};

struct err;

/* Parses argv (main's, unmodified). Result codes: 0 = run; EINVAL = bad usage (err says why);
 * *exit_now_out = true when --help / --version was handled (text already printed to stdout).
 * Reads the environment for the values not given with -o. Canonicalises both directories and
 * checks that BACKING_DIR is a directory (ENOENT/ENOTDIR otherwise, with a clear message). */
int fs_config_parse(struct fs_config *cfg, int argc, char **argv, bool *exit_now_out,
                    struct err *err);
void fs_config_free(struct fs_config *cfg);
/* Writes the --help text to stdout. */
void fs_config_usage(const char *prog);

#endif
