/* cli/cli.h - internals shared by the bottomless-cli command files (not a library API).
 * What:    struct cli holds the resolved configuration (flags over environment), the lazily
 *          created S3 client and the pieces of the final error report (hint, usage flag).
 *          One file per command: ls.c, restore.c (restore + verify), rm.c, snapshot.c, each
 *          declaring its options as a struct cli_opt table for cli_parse_opts() (util.c);
 *          config.c parses global options and is the only getenv() caller in cli/.
 * Owns:    cli_free() releases the client and the strings; commands borrow everything.
 * Threads: single-threaded (the S3 client and the restore engine may use threads inside).
 * Errors:  commands return 0 or a positive errno with *err filled. A usage mistake sets
 *          cli->usage_error (exit 2) through cli_usage(); cli->hint says how to fix a failure.
 *          main.c turns this into "bottomless-cli: error: ..." and the exit code 0/1/2.
 * Output:  formats follow libSQL's bottomless-cli (../shared/reference/bottomless-format.md §6);
 *          the man page docs/bottomless-cli.1 is the user-facing contract. */
#ifndef BFS_CLI_CLI_H
#define BFS_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "common/err.h"
#include "s3/s3.h"
#include "wal/compress.h"
#include "wal/layout.h"

#define CLI_NAME "bottomless-cli"
#define CLI_VERSION "0.1.0"
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILED 1
#define CLI_EXIT_USAGE 2

struct cli {
    struct s3_conf s3; /* flags first, then s3_conf_resolve() fills the rest */
    char *db_name;     /* -d, else LIBSQL_BOTTOMLESS_DATABASE_ID; NULL when neither */
    bool verify_crc;   /* LIBSQL_BOTTOMLESS_VERIFY_CRC (default true) */
    int log_level;     /* --log-level (enum log_level; default errors only) */
    bool stdout_is_tty, stderr_is_tty;
    const char *tmpdir;       /* TMPDIR or /tmp */
    struct s3_client *client; /* NULL until cli_connect() */
    bool usage_error;         /* the failure was a usage mistake: exit 2 */
    const char *command;      /* current command name, for messages */
    char hint[512];           /* how to fix the failure ("" when none) */
};

/* --- config.c --- */
/* Parses the global options (argv up to the command) and the environment. On success
 * *cmd_index_out is the argv index of the command (argc when there is none). Sets
 * *done_out when --help/--version was handled. Usage mistakes set cli->usage_error. */
int cli_config_parse(struct cli *cli, int argc, char **argv, int *cmd_index_out, bool *done_out,
                     struct err *err);
void cli_free(struct cli *cli);
/* Resolves credentials and creates the client; checks the bucket with HeadBucket so that
 * credential, endpoint and bucket problems surface first with a hint. Idempotent. */
int cli_connect(struct cli *cli, struct err *err);
/* Fills cli->hint for an S3 failure (credentials, endpoint, bucket). */
void cli_hint_for_s3(struct cli *cli, const struct err *e);

/* --- util.c --- */
/* Records a usage error (exit 2) with the hint "see 'bottomless-cli CMD --help'". */
int cli_usage(struct cli *cli, struct err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cli_set_hint(struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Requires -d; usage error naming the flag otherwise. */
int cli_require_db(struct cli *cli, struct err *err);
/* cli_require_db(), then cli_connect(): for the commands that work on one database. */
int cli_connect_db(struct cli *cli, struct err *err);
/* "2023-11-29T07:34:00+00:00" (rfc3339) / "2023-11-29 07:34:00" (plain) / "...Z" (zulu). */
void cli_fmt_time(time_t t, char *buf, size_t len);
void cli_fmt_time_plain(time_t t, char *buf, size_t len);
void cli_fmt_time_zulu(time_t t, char *buf, size_t len);
/* "1.5 MiB" style. */
void cli_fmt_bytes(uint64_t n, char *buf, size_t len);
/* s with control bytes and '\\' as \\xNN, so names from a bucket cannot drive the terminal. */
void cli_print_safe(FILE *f, const char *s);
/* JSON string literal (with quotes) of s to f. */
void cli_json_string(FILE *f, const char *s);
/* Parses a non-negative decimal integer option value; usage error naming opt otherwise. */
int cli_parse_count(struct cli *cli, const char *opt, const char *s, long *out, struct err *err);

/* --- command options (util.c) --- */
/* What an option's value must be and where it goes. A malformed value is a usage error naming
 * the option as "-g/--generation" ("--older-than" when it has no short form). */
enum cli_opt_kind {
    CLI_OPT_FLAG,        /* no value: *out.flag = true */
    CLI_OPT_COUNT,       /* non-negative decimal -> *out.count (cli_parse_count) */
    CLI_OPT_GEN,         /* generation id -> *out.gen (cli_parse_gen) */
    CLI_OPT_DATE,        /* UTC date -> *out.date_s (cli_parse_date) */
    CLI_OPT_FILE,        /* non-empty file name -> *out.file, pointing into argv */
    CLI_OPT_COMPRESSION, /* zstd, gz or raw -> *out.comp */
};

struct cli_opt {
    const char *name;       /* long name, without "--" */
    char short_name;        /* 0 when there is only the long name; never 'h' */
    enum cli_opt_kind kind; /* selects the member of out */
    union {
        bool *flag;
        long *count;
        struct gen_id *gen;
        int64_t *date_s;
        const char **file;
        enum compression *comp;
    } out;
    bool *seen; /* NULL, or set to true when the option is given */
};

#define CLI_OPTS_MAX 8 /* entries in one command's table */

/* Parses the options of cli->command (argv[0] is the command name) by opts[0..n_opts), with
 * -h/--help added: that prints the command's help to stdout, sets *help_out and ignores the
 * rest of argv. Options not given leave their out untouched. Usage errors (exit 2): unknown
 * option, missing or malformed value, any positional argument. Checks that combine options
 * are the caller's, after this returns 0 with *help_out false. */
int cli_parse_opts(struct cli *cli, int argc, char **argv, const struct cli_opt *opts,
                   size_t n_opts, bool *help_out, struct err *err);

/* --- bucket helpers (util.c) on top of wal/layout.h --- */
/* Parses a generation id argument (-g); usage error naming the flag when malformed. */
int cli_parse_gen(struct cli *cli, const char *opt, const char *s, struct gen_id *out,
                  struct err *err);
/* Parses a date argument (--older-than, -u); usage error naming the flag when malformed. */
int cli_parse_date(struct cli *cli, const char *opt, const char *s, int64_t *out, struct err *err);
/* ENOENT with "generation G not found for database D" unless gen has at least one object. */
int cli_check_gen_exists(struct cli *cli, const struct gen_id *gen, struct err *err);
/* Newest generation of cli->db_name (ENOENT with a hint when the database has none). */
int cli_newest_gen(struct cli *cli, struct gen_id *out, struct err *err);
/* Default restore output "./<basename of the db_name's path>", never outside the cwd. */
int cli_default_output(struct cli *cli, char *out, size_t cap, struct err *err);

/* --- progress.c: a one-line progress bar on stderr (only when stderr is a terminal) --- */
struct progress {
    bool enabled;
    uint64_t total; /* 0 when unknown */
    uint64_t done;
    double start_s, last_draw_s;
    const char *label;
};
void progress_init(struct progress *p, bool enabled, const char *label, uint64_t total);
void progress_set(struct progress *p, uint64_t done, uint64_t total);
void progress_finish(struct progress *p);

/* --- help.c --- */
void cli_help_main(FILE *f);
/* false when cmd is not a command. */
bool cli_help_command(FILE *f, const char *cmd);

/* --- commands --- */
int cmd_ls(struct cli *cli, int argc, char **argv, struct err *err);
int cmd_restore(struct cli *cli, int argc, char **argv, struct err *err);
int cmd_verify(struct cli *cli, int argc, char **argv, struct err *err);
int cmd_rm(struct cli *cli, int argc, char **argv, struct err *err);
int cmd_snapshot(struct cli *cli, int argc, char **argv, struct err *err);

#endif
