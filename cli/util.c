/* cli/util.c - small helpers for the CLI: usage errors and hints, command options, UTC dates,
 * byte counts, JSON string output. */
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_usage(struct cli *cli, struct err *err, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cli->usage_error = true;
    if (cli->command != NULL)
        cli_set_hint(cli, "see '%s %s --help'", CLI_NAME, cli->command);
    else
        cli_set_hint(cli, "see '%s --help'", CLI_NAME);
    return ERR(err, EINVAL, "%s", msg);
}

void cli_set_hint(struct cli *cli, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cli->hint, sizeof(cli->hint), fmt, ap);
    va_end(ap);
}

int cli_require_db(struct cli *cli, struct err *err)
{
    if (cli->db_name != NULL)
        return 0;
    cli->usage_error = true;
    cli_set_hint(cli,
                 "pass the database with -d NAME before the command (or set "
                 "LIBSQL_BOTTOMLESS_DATABASE_ID); '%s ls' without -d lists the databases",
                 CLI_NAME);
    return ERR(err, EINVAL, "'%s' needs a database name", cli->command ? cli->command : "");
}

int cli_connect_db(struct cli *cli, struct err *err)
{
    int rc = cli_require_db(cli, err);

    return rc != 0 ? rc : cli_connect(cli, err);
}

/* Reads exactly n digits into *out; returns the position after them or NULL. */
static const char *digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return NULL;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return s + n;
}

/* "YYYY-MM-DD" or "YYYY-MM-DD[T ]HH:MM:SS[.fff][Z|+00:00]" (UTC), so that a time printed by
 * ls can be pasted back. */
static int parse_time(const char *s, time_t *out, bool *date_only_out)
{
    struct tm tm = {0};
    int year, mon, day, hour = 0, min = 0, sec = 0;
    const char *p = s;
    bool date_only = true;
    time_t t;

    p = digits(p, 4, &year);
    if (p == NULL || *p++ != '-')
        return EINVAL;
    p = digits(p, 2, &mon);
    if (p == NULL || *p++ != '-')
        return EINVAL;
    p = digits(p, 2, &day);
    if (p == NULL)
        return EINVAL;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        date_only = false;
        p = digits(p + 1, 2, &hour);
        if (p == NULL || *p++ != ':')
            return EINVAL;
        p = digits(p, 2, &min);
        if (p == NULL || *p++ != ':')
            return EINVAL;
        p = digits(p, 2, &sec);
        if (p == NULL)
            return EINVAL;
        if (*p == '.') { /* fractional seconds are accepted and dropped */
            p++;
            if (!isdigit((unsigned char)*p))
                return EINVAL;
            while (isdigit((unsigned char)*p))
                p++;
        }
        if (*p == 'Z' || *p == 'z')
            p++;
        else if (strcmp(p, "+00:00") == 0)
            p += 6;
    }
    if (*p != '\0')
        return EINVAL;
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return EINVAL;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (t == (time_t)-1 || tm.tm_mday != day) /* timegm normalises 2023-02-30 */
        return EINVAL;
    *out = t;
    if (date_only_out != NULL)
        *date_only_out = date_only;
    return 0;
}

/* sep between date and time, suffix after it. */
static void fmt_tm(time_t t, char sep, const char *suffix, char *buf, size_t len)
{
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, len, "@%lld", (long long)t);
        return;
    }
    snprintf(buf, len, "%04d-%02d-%02d%c%02d:%02d:%02d%s", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, sep, tm.tm_hour, tm.tm_min, tm.tm_sec, suffix);
}

void cli_fmt_time(time_t t, char *buf, size_t len)
{
    fmt_tm(t, 'T', "+00:00", buf, len);
}

void cli_fmt_time_plain(time_t t, char *buf, size_t len)
{
    fmt_tm(t, ' ', "", buf, len);
}

void cli_fmt_time_zulu(time_t t, char *buf, size_t len)
{
    fmt_tm(t, 'T', "Z", buf, len);
}

void cli_fmt_bytes(uint64_t n, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    size_t u = 0;

    while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)n);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

int cli_parse_count(struct cli *cli, const char *opt, const char *s, long *out, struct err *err)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0)
        return cli_usage(cli, err, "%s needs a non-negative number, not '%s'", opt, s);
    *out = v;
    return 0;
}

int cli_parse_gen(struct cli *cli, const char *opt, const char *s, struct gen_id *out,
                  struct err *err)
{
    if (gen_id_parse(s, strlen(s), out, NULL) != 0)
        return cli_usage(cli, err,
                         "%s '%s' is not a generation id (a lowercase UUID like "
                         "e4e46038-04e1-7b18-a1f4-d269ac2d19dd, as printed by ls)",
                         opt, s);
    return 0;
}

int cli_parse_date(struct cli *cli, const char *opt, const char *s, int64_t *out, struct err *err)
{
    time_t t;

    if (parse_time(s, &t, NULL) != 0)
        return cli_usage(cli, err,
                         "%s '%s' is not a UTC date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[Z]", opt,
                         s);
    *out = (int64_t)t;
    return 0;
}

/* getopt_long's value for the long name of opts[i]: above every short option character. */
#define OPT_LONG_VAL_BASE 1000

static const struct cli_opt *find_opt(const struct cli_opt *opts, size_t n_opts, int val)
{
    if (val >= OPT_LONG_VAL_BASE)
        return (size_t)(val - OPT_LONG_VAL_BASE) < n_opts ? &opts[val - OPT_LONG_VAL_BASE] : NULL;
    for (size_t i = 0; i < n_opts; i++)
        if (opts[i].short_name != 0 && opts[i].short_name == val)
            return &opts[i];
    return NULL;
}

/* Checks arg (NULL for a flag) and stores it where o says. */
static int set_opt(struct cli *cli, const struct cli_opt *o, const char *arg, struct err *err)
{
    char label[64];
    int rc = 0;

    if (o->short_name != 0)
        snprintf(label, sizeof(label), "-%c/--%s", o->short_name, o->name);
    else
        snprintf(label, sizeof(label), "--%s", o->name);
    switch (o->kind) {
    case CLI_OPT_FLAG:
        *o->out.flag = true;
        break;
    case CLI_OPT_COUNT:
        rc = cli_parse_count(cli, label, arg, o->out.count, err);
        break;
    case CLI_OPT_GEN:
        rc = cli_parse_gen(cli, label, arg, o->out.gen, err);
        break;
    case CLI_OPT_DATE:
        rc = cli_parse_date(cli, label, arg, o->out.date_s, err);
        break;
    case CLI_OPT_FILE:
        if (arg[0] == '\0')
            return cli_usage(cli, err, "%s needs a file name", label);
        *o->out.file = arg;
        break;
    case CLI_OPT_COMPRESSION:
        /* compression_parse() takes "" as raw; on the command line it is a mistake */
        if (compression_parse(arg, o->out.comp) != 0 || arg[0] == '\0')
            return cli_usage(cli, err, "%s '%s': use zstd, gz or raw", label, arg);
        break;
    }
    if (rc == 0 && o->seen != NULL)
        *o->seen = true;
    return rc;
}

int cli_parse_opts(struct cli *cli, int argc, char **argv, const struct cli_opt *opts,
                   size_t n_opts, bool *help_out, struct err *err)
{
    const char *command = cli->command != NULL ? cli->command : "";
    struct option long_opts[CLI_OPTS_MAX + 2];
    char short_opts[2 * CLI_OPTS_MAX + 3];
    size_t n_short = 0;

    *help_out = false;
    if (n_opts > CLI_OPTS_MAX)
        return ERR(err, EINVAL, "%s: %zu options, at most %d", command, n_opts, CLI_OPTS_MAX);
    short_opts[n_short++] = ':'; /* a missing value returns ':', not '?' */
    for (size_t i = 0; i < n_opts; i++) {
        int has_arg = opts[i].kind == CLI_OPT_FLAG ? no_argument : required_argument;

        long_opts[i] = (struct option){opts[i].name, has_arg, NULL, OPT_LONG_VAL_BASE + (int)i};
        if (opts[i].short_name != 0) {
            short_opts[n_short++] = opts[i].short_name;
            if (has_arg == required_argument)
                short_opts[n_short++] = ':';
        }
    }
    long_opts[n_opts] = (struct option){"help", no_argument, NULL, 'h'};
    long_opts[n_opts + 1] = (struct option){NULL, 0, NULL, 0};
    short_opts[n_short++] = 'h';
    short_opts[n_short] = '\0';

    optind = 0;
    opterr = 0;
    for (;;) {
        int opt = getopt_long(argc, argv, short_opts, long_opts, NULL);
        const struct cli_opt *o;
        int rc;

        if (opt == -1)
            break;
        if (opt == 'h') {
            cli_help_command(stdout, command);
            *help_out = true;
            return 0;
        }
        if (opt == ':')
            return cli_usage(cli, err, "option '%s' needs a value", argv[optind - 1]);
        o = find_opt(opts, n_opts, opt);
        if (o == NULL)
            return cli_usage(cli, err, "unknown option '%s' for %s", argv[optind - 1], command);
        rc = set_opt(cli, o, optarg, err);
        if (rc != 0)
            return rc;
    }
    if (optind < argc)
        return cli_usage(cli, err, "unexpected argument '%s'", argv[optind]);
    return 0;
}

int cli_check_gen_exists(struct cli *cli, const struct gen_id *gen, struct err *err)
{
    char prefix[LAYOUT_KEY_MAX], id[GEN_ID_STR_LEN + 1];
    struct s3_list_opts opts = {.prefix = prefix, .max_keys = 1};
    struct s3_list_page page = {0};
    int rc;

    rc = layout_key_gen_prefix(cli->db_name, gen, prefix);
    if (rc != 0)
        return ERR(err, rc, "database name '%s' is too long or invalid", cli->db_name);
    rc = s3_list_page(cli->client, &opts, NULL, &page, err);
    if (rc != 0)
        return rc;
    if (page.n_objects == 0) {
        gen_id_format(gen, id);
        rc = ERR(err, ENOENT, "generation %s not found for database %s", id, cli->db_name);
        cli_set_hint(cli, "list the generations with '%s -d %s ls'", CLI_NAME, cli->db_name);
    }
    s3_list_page_free(&page);
    return rc;
}

int cli_newest_gen(struct cli *cli, struct gen_id *out, struct err *err)
{
    struct gen_id *ids = NULL;
    size_t n = 0;
    int rc = layout_list_generations(cli->client, cli->db_name, &ids, &n, err);

    if (rc != 0)
        return rc;
    if (n == 0) {
        rc = ERR(err, ENOENT, "no generations found for database %s in bucket %s", cli->db_name,
                 s3_client_bucket(cli->client));
        cli_set_hint(cli, "'%s ls' without -d lists the databases in the bucket", CLI_NAME);
    } else {
        *out = ids[0];
    }
    free(ids);
    return rc;
}

static bool safe_component(const char *s)
{
    if (s[0] == '\0' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '/')
            return false;
    return true;
}

int cli_default_output(struct cli *cli, char *out, size_t cap, struct err *err)
{
    char path[LAYOUT_KEY_MAX];
    const char *base = NULL;

    if (layout_path_from_db_name(cli->db_name, path, sizeof(path), NULL) == 0) {
        const char *slash = strrchr(path, '/');

        base = slash != NULL ? slash + 1 : path;
    } else {
        base = cli->db_name; /* not one of our escaped names (e.g. bottomless' ns-x:default) */
    }
    if (!safe_component(base) || strlen(base) + 1 > cap) {
        cli->usage_error = true;
        cli_set_hint(cli, "name the output file with -o PATH");
        return ERR(err, EINVAL, "database name '%s' does not give a safe local file name",
                   cli->db_name);
    }
    snprintf(out, cap, "%s", base);
    return 0;
}

void cli_print_safe(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\')
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
}
