/* cli/restore.c - `restore` (into a local file) and `verify` (into a temporary file, strict);
 * both drive restore_run() from wal/restore.h and print what was restored. */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "wal/restore.h"

struct restore_args {
    bool has_gen, has_time, ignore_tombstone, force, strict;
    struct gen_id gen;
    int64_t time_s;
    const char *output;
};

static int parse_opts(struct cli *cli, int argc, char **argv, bool is_verify,
                      struct restore_args *a, bool *help, struct err *err)
{
    /* verify takes the first three */
    const struct cli_opt opts[] = {
        {"generation", 'g', CLI_OPT_GEN, .out.gen = &a->gen, .seen = &a->has_gen},
        {"utc-time", 'u', CLI_OPT_DATE, .out.date_s = &a->time_s, .seen = &a->has_time},
        {"ignore-tombstone", 0, CLI_OPT_FLAG, .out.flag = &a->ignore_tombstone},
        {"output", 'o', CLI_OPT_FILE, .out.file = &a->output},
        {"force", 'f', CLI_OPT_FLAG, .out.flag = &a->force},
        {"strict", 0, CLI_OPT_FLAG, .out.flag = &a->strict},
    };
    size_t n_opts = is_verify ? 3 : sizeof(opts) / sizeof(opts[0]);
    int rc;

    memset(a, 0, sizeof(*a));
    rc = cli_parse_opts(cli, argc, argv, opts, n_opts, help, err);
    if (rc != 0 || *help)
        return rc;
    if (a->has_gen && a->has_time)
        return cli_usage(cli, err, "-g and -u are mutually exclusive");
    return 0;
}

static void on_progress(void *arg, uint64_t done, uint64_t total)
{
    progress_set(arg, done, total);
}

static void print_result(struct cli *cli, const struct restore_result *r, const char *what)
{
    char id[GEN_ID_STR_LEN + 1], t[64], sz[32];

    gen_id_format(&r->gen, id);
    cli_fmt_time((time_t)gen_id_created_s(&r->gen), t, sizeof(t));
    printf("%s database %s\n", what, cli->db_name);
    printf("  generation:   %s (created: %s)\n", id, t);
    if (r->has_snapshot) {
        printf("  snapshot:     %s\n", r->snapshot_key);
    } else {
        printf("  snapshot:     none (replayed from an empty database)\n");
    }
    printf("  generations:  %u\n", r->n_generations);
    printf("  frames:       %llu\n", (unsigned long long)r->frames_applied);
    printf("  transactions: %llu\n", (unsigned long long)r->txns_applied);
    if (r->last_frame > 0) {
        gen_id_format(&r->last_frame_gen, id);
        printf("  last frame:   %u of generation %s", r->last_frame, id);
        if (r->last_batch_ts > 0) {
            cli_fmt_time((time_t)r->last_batch_ts, t, sizeof(t));
            printf(" (batch time %s)", t);
        }
        printf("\n");
    }
    if (r->page_size > 0)
        printf("  page size:    %u\n", r->page_size);
    cli_fmt_bytes(r->db_size, sz, sizeof(sz));
    printf("  size:         %llu bytes (%s)\n", (unsigned long long)r->db_size, sz);
    if (r->partial)
        printf("  partial:      yes, stopped at the last consistent transaction: %s\n", r->reason);
}

/* Runs the restore with a progress bar on a terminal. */
static int run(struct cli *cli, const struct restore_args *a, const char *target,
               const char *scratch, bool strict, bool verify_crc, struct restore_result *r,
               struct err *err)
{
    struct restore_opts o;
    struct progress p;
    int rc;

    restore_opts_init(&o);
    o.db_name = cli->db_name;
    o.target = target;
    o.gen = a->has_gen ? &a->gen : NULL;
    o.has_time = a->has_time;
    o.time_s = a->time_s;
    o.strict = strict;
    o.ignore_tombstone = a->ignore_tombstone;
    o.no_verify_crc = !verify_crc;
    o.scratch_dir = scratch;
    progress_init(&p, cli->stderr_is_tty, cli->command, 0);
    o.progress = on_progress;
    o.progress_arg = &p;
    memset(r, 0, sizeof(*r));
    rc = restore_run(cli->client, &o, r, err);
    progress_finish(&p);
    if (rc == ENOENT && strstr(err->msg, "no generation found") != NULL)
        cli_set_hint(cli, "'%s ls' without -d lists the databases in bucket %s", CLI_NAME,
                     s3_client_bucket(cli->client));
    else if (rc == ENODATA)
        cli_set_hint(
            cli,
            "restore another generation with -g GEN (the replicator gives the newest one a base); "
            "'%s -d %s ls -v' shows which have a snapshot or a .dep parent",
            CLI_NAME, cli->db_name);
    else if (rc == ENOENT && strstr(err->msg, "has been tombstoned") != NULL)
        cli_set_hint(cli,
                     "the database was deleted (rm through a mount writes the tombstone); its "
                     "generations are still in the bucket: add --ignore-tombstone (with -u "
                     "TIME for the state at a time before the deletion)");
    else if (rc == ENOENT && (strstr(err->msg, "not found") != NULL || a->has_time))
        cli_set_hint(cli, "list the generations and their creation times with '%s -d %s ls'",
                     CLI_NAME, cli->db_name);
    return rc;
}

/* The restore writes a temporary file next to target: its directory must exist. */
static int check_output_dir(struct cli *cli, const char *target, struct err *err)
{
    char dir[4096];
    const char *slash = strrchr(target, '/');
    struct stat st;

    if (slash == NULL)
        return 0; /* the current directory */
    snprintf(dir, sizeof(dir), "%.*s", slash == target ? 1 : (int)(slash - target), target);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        cli_set_hint(cli, "create the directory first, or pass another -o PATH");
        return ERR(err, ENOENT, "output directory %s does not exist", dir);
    }
    return 0;
}

int cmd_restore(struct cli *cli, int argc, char **argv, struct err *err)
{
    struct restore_args a;
    struct restore_result r;
    char default_out[LAYOUT_KEY_MAX];
    const char *target;
    struct stat st;
    bool help = false;
    int rc;

    rc = parse_opts(cli, argc, argv, false, &a, &help, err);
    if (rc != 0 || help)
        return rc;
    rc = cli_require_db(cli, err);
    if (rc != 0)
        return rc;
    target = a.output;
    if (target == NULL) {
        rc = cli_default_output(cli, default_out, sizeof(default_out), err);
        if (rc != 0)
            return rc;
        target = default_out;
    }
    if (stat(target, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            cli_set_hint(cli, "name the output file with -o DIR/FILE");
            return ERR(err, EISDIR, "output %s is a directory", target);
        }
        if (st.st_size > 0 && !a.force) {
            cli_set_hint(cli, "pass --force to replace it, or -o PATH to restore elsewhere");
            return ERR(err, EEXIST, "refusing to overwrite %s: it exists and is not empty", target);
        }
    }
    rc = check_output_dir(cli, target, err);
    if (rc != 0)
        return rc;
    rc = cli_connect(cli, err);
    if (rc != 0)
        return rc;
    rc = run(cli, &a, target, NULL, a.strict, cli->verify_crc, &r, err);
    if (rc != 0) {
        if (rc == EBADMSG && a.strict)
            cli_set_hint(cli,
                         "%s was left untouched; without --strict the restore stops at the "
                         "last consistent transaction",
                         target);
        else if (rc == EBADMSG)
            cli_set_hint(cli, "%s was left untouched", target);
        return rc;
    }
    print_result(cli, &r, "Restored");
    printf("  output:       %s\n", target);
    if (r.partial)
        fprintf(stderr, "%s: warning: partial restore: %s\n", CLI_NAME, r.reason);
    printf("Verification: %s\n", r.integrity_ok ? "ok" : "failed");
    if (!r.integrity_ok)
        return ERR(err, EBADMSG, "PRAGMA integrity_check failed on %s", target);
    return 0;
}

int cmd_verify(struct cli *cli, int argc, char **argv, struct err *err)
{
    struct restore_args a;
    struct restore_result r;
    char dir[4096], target[4200];
    bool help = false;
    struct err cleanup_err = {0};
    int rc;

    rc = parse_opts(cli, argc, argv, true, &a, &help, err);
    if (rc != 0 || help)
        return rc;
    rc = cli_connect_db(cli, err);
    if (rc != 0)
        return rc;
    snprintf(dir, sizeof(dir), "%s/bottomless-verify-XXXXXX", cli->tmpdir);
    if (mkdtemp(dir) == NULL) {
        rc = errno;
        cli_set_hint(cli, "set TMPDIR to a writable directory with enough space");
        return ERR(err, rc, "cannot create a temporary directory in %s: %s", cli->tmpdir,
                   errno_name(rc));
    }
    snprintf(target, sizeof(target), "%s/db", dir);
    rc = run(cli, &a, target, dir, true, true, &r, err);
    if (rc == 0) {
        print_result(cli, &r, "Verified");
        printf("Snapshot size: %llu\n", (unsigned long long)r.db_size);
        if (!r.integrity_ok)
            rc = ERR(err, EBADMSG, "PRAGMA integrity_check failed");
        else if (r.partial)
            rc = ERR(err, EBADMSG, "%s", r.reason);
    }
    if (rc == 0) {
        printf("Verification: ok\n");
    } else if (strncmp(err->where, "s3/", 3) != 0) { /* a finding, not an S3 failure */
        printf("Verification failed: %s\n", err->msg);
        if (rc != ENOENT) /* else there is nothing to restore either */
            cli_set_hint(cli,
                         "the newest consistent state can still be restored with '%s -d %s "
                         "restore' (without --strict)",
                         CLI_NAME, cli->db_name);
    }
    if (fileio_rm_rf(dir, &cleanup_err) != 0)
        fprintf(stderr, "%s: warning: could not remove %s: %s\n", CLI_NAME, dir, cleanup_err.msg);
    return rc;
}
