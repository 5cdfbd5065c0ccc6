/* cli/config.c - global options and environment for bottomless-cli; the only getenv() caller
 * in cli/. Flags win over the environment: flags are stored in cli->s3 first, and
 * s3_conf_resolve() (s3/) fills whatever is still unset from LIBSQL_BOTTOMLESS_* / AWS_*. */
#include "cli/cli.h"

#include "common/log.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum {
    OPT_REGION = 1000,
    OPT_CA_FILE,
    OPT_INSECURE,
    OPT_VIRTUAL_HOSTED,
    OPT_VERSION,
    OPT_LOG_LEVEL,
};

static const struct option global_opts[] = {
    {"endpoint", required_argument, NULL, 'e'},
    {"bucket", required_argument, NULL, 'b'},
    {"database", required_argument, NULL, 'd'},
    {"region", required_argument, NULL, OPT_REGION},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"virtual-hosted", no_argument, NULL, OPT_VIRTUAL_HOSTED},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {NULL, 0, NULL, 0},
};

/* Trimmed value of an environment variable; NULL when unset or empty. Caller frees. */
static char *env_dup(const char *name)
{
    const char *v = getenv(name);
    size_t len;

    if (v == NULL)
        return NULL;
    while (*v == ' ' || *v == '\t' || *v == '\n')
        v++;
    len = strlen(v);
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t' || v[len - 1] == '\n'))
        len--;
    if (len == 0)
        return NULL;
    return strndup(v, len);
}

static int set_string(char **dst, const char *value, struct err *err)
{
    char *copy = strdup(value);

    if (copy == NULL)
        return ERR(err, ENOMEM, "out of memory");
    free(*dst);
    *dst = copy;
    return 0;
}

/* yes/true/1/y/t or no/false/0/n/f (bottomless's boolean spelling). */
static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"yes", "true", "1", "y", "t"};
    static const char *const no[] = {"no", "false", "0", "n", "f"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return EINVAL;
}

static int read_environment(struct cli *cli, struct err *err)
{
    char *v = env_dup("LIBSQL_BOTTOMLESS_VERIFY_CRC");
    int rc = 0;

    if (v != NULL && parse_bool(v, &cli->verify_crc) != 0) {
        rc = ERR(err, EINVAL, "LIBSQL_BOTTOMLESS_VERIFY_CRC=%s is not a boolean", v);
        cli_set_hint(cli, "use one of yes/true/1 or no/false/0");
    }
    free(v);
    if (rc != 0)
        return rc;
    if (cli->db_name == NULL)
        cli->db_name = env_dup("LIBSQL_BOTTOMLESS_DATABASE_ID");
    v = env_dup("LIBSQL_BOTTOMLESS_S3_MAX_RETRIES");
    if (v != NULL) {
        char *end = NULL;
        long n = strtol(v, &end, 10);

        if (end == v || *end != '\0' || n < 0 || n > 100) {
            rc = ERR(err, EINVAL, "LIBSQL_BOTTOMLESS_S3_MAX_RETRIES=%s is not a number 0..100", v);
        } else {
            cli->s3.max_attempts = (int)n + 1;
        }
        free(v);
    }
    /* The environment string itself lives as long as the process. */
    cli->tmpdir = getenv("TMPDIR");
    if (cli->tmpdir == NULL || cli->tmpdir[0] == '\0')
        cli->tmpdir = "/tmp";
    return rc;
}

int cli_config_parse(struct cli *cli, int argc, char **argv, int *cmd_index_out, bool *done_out,
                     struct err *err)
{
    int rc = 0;

    s3_conf_init(&cli->s3);
    cli->verify_crc = true;
    char *env_level = env_dup("BOTTOMLESS_LOG"); /* --log-level wins over it */
    int level = env_level != NULL ? log_level_parse(env_level) : (int)LOG_LEVEL_ERROR;
    free(env_level);
    if (level < 0)
        return cli_usage(cli, err, "BOTTOMLESS_LOG: use error, warn, info, debug or trace");
    cli->log_level = level;
    cli->stdout_is_tty = isatty(STDOUT_FILENO) == 1;
    cli->stderr_is_tty = isatty(STDERR_FILENO) == 1;
    *done_out = false;
    *cmd_index_out = argc;

    opterr = 0;
    optind = 1;
    for (;;) {
        int opt = getopt_long(argc, argv, "+:e:b:d:hV", global_opts, NULL);

        if (opt == -1)
            break;
        switch (opt) {
        case 'e':
            rc = set_string(&cli->s3.endpoint, optarg, err);
            break;
        case 'b':
            rc = set_string(&cli->s3.bucket, optarg, err);
            break;
        case 'd':
            rc = set_string(&cli->db_name, optarg, err);
            break;
        case OPT_REGION:
            rc = set_string(&cli->s3.region, optarg, err);
            break;
        case OPT_CA_FILE:
            rc = set_string(&cli->s3.ca_file, optarg, err);
            break;
        case OPT_INSECURE:
            cli->s3.insecure_tls = true;
            break;
        case OPT_VIRTUAL_HOSTED:
            cli->s3.virtual_hosted = true;
            break;
        case OPT_LOG_LEVEL:
            if (log_level_parse(optarg) < 0)
                return cli_usage(cli, err,
                                 "--log-level '%s': use error, warn, info, debug or trace", optarg);
            cli->log_level = log_level_parse(optarg);
            break;
        case 'h':
            cli_help_main(stdout);
            *done_out = true;
            return 0;
        case 'V':
        case OPT_VERSION:
            printf("%s %s\n", CLI_NAME, CLI_VERSION);
            *done_out = true;
            return 0;
        case ':':
            return cli_usage(cli, err, "option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt != 0)
                return cli_usage(cli, err, "unknown global option '-%c'", optopt);
            return cli_usage(cli, err, "unknown global option '%s'", argv[optind - 1]);
        }
        if (rc != 0)
            return rc;
    }
    if (cli->db_name != NULL && cli->db_name[0] == '\0')
        return cli_usage(cli, err, "-d/--database needs a non-empty database name");
    if (cli->db_name != NULL && strchr(cli->db_name, '/') != NULL) {
        /* A db_name never holds '/', so this is a path relative to a bottomlessfs mount:
         * map it the way the daemon does (sub/app.db -> sub%2Fapp.db). */
        char name[LAYOUT_KEY_MAX];
        struct err e2 = {0};

        if (layout_db_name_from_path(cli->db_name, name, sizeof(name), &e2) != 0)
            return cli_usage(cli, err, "database path '%s' cannot be mapped to a name: %s",
                             cli->db_name, e2.msg);
        rc = set_string(&cli->db_name, name, err);
        if (rc != 0)
            return rc;
    }
    rc = read_environment(cli, err);
    if (rc != 0)
        return rc;
    *cmd_index_out = optind;
    return 0;
}

void cli_free(struct cli *cli)
{
    s3_client_free(cli->client);
    cli->client = NULL;
    s3_conf_free(&cli->s3);
    free(cli->db_name);
    cli->db_name = NULL;
}

void cli_hint_for_s3(struct cli *cli, const struct err *e)
{
    const char *endpoint = cli->s3.endpoint != NULL ? cli->s3.endpoint : S3_DEFAULT_ENDPOINT;
    const char *bucket = cli->s3.bucket != NULL ? cli->s3.bucket : S3_DEFAULT_BUCKET;

    if (cli->hint[0] != '\0' || strncmp(e->where, "s3/", 3) != 0)
        return; /* only failures that came from the S3 client get these hints */
    switch (e->code) {
    case EACCES:
        if (strstr(e->msg, "RequestTimeTooSkewed") != NULL) {
            cli_set_hint(cli, "set this machine's clock (e.g. timedatectl set-ntp true), then "
                              "try again");
            break;
        }
        cli_set_hint(
            cli, "the endpoint refused the credentials: check "
                 "LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID and LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY "
                 "(or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials) and the "
                 "region (--region, LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION)");
        break;
    case ENOENT:
        if (strstr(e->msg, "NoSuchBucket") != NULL)
            cli_set_hint(cli,
                         "bucket '%s' does not exist at %s: pass the right one with -b/--bucket "
                         "(or LIBSQL_BOTTOMLESS_BUCKET)",
                         bucket, endpoint);
        break;
    default:
        if (e->http_status == 0 && e->code != EINVAL && e->code != EBADMSG && e->code != ENOMEM)
            cli_set_hint(cli,
                         "could not talk to the S3 endpoint %s: check that it is running and "
                         "reachable, or pass the right URL with -e/--endpoint (or "
                         "LIBSQL_BOTTOMLESS_ENDPOINT)",
                         endpoint);
        else if (e->http_status >= 500)
            cli_set_hint(cli, "the S3 endpoint %s keeps failing; try again later", endpoint);
        break;
    }
}

int cli_connect(struct cli *cli, struct err *err)
{
    int rc;

    if (cli->client != NULL)
        return 0;
    rc = s3_conf_resolve(&cli->s3, err);
    if (rc != 0) {
        if (rc == EINVAL)
            cli_set_hint(cli, "set LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID, "
                              "LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY and "
                              "LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION (or AWS_ACCESS_KEY_ID, "
                              "AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION)");
        return rc;
    }
    cli->client = s3_client_new(&cli->s3, err);
    if (cli->client == NULL) {
        rc = err != NULL && err->code != 0 ? err->code : EIO;
        cli_hint_for_s3(cli, err);
        return rc;
    }
    rc = s3_head_bucket(cli->client, err);
    if (rc == EACCES) {
        /* HEAD has no body: a one-key listing brings the S3 error code
         * (InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied) into the message. */
        struct s3_list_opts lo = {.max_keys = 1};
        struct s3_list_page page = {0};
        struct err detail = {0};

        if (s3_list_page(cli->client, &lo, NULL, &page, &detail) == EACCES) {
            err_clear(err);
            ERR(err, EACCES, "%s", detail.msg);
            snprintf(err->where, sizeof(err->where), "%s", detail.where);
        }
        s3_list_page_free(&page);
    }
    if (rc != 0) {
        if (rc == ENOENT)
            cli_set_hint(cli,
                         "bucket '%s' does not exist at %s: pass the right one with -b/--bucket "
                         "(or LIBSQL_BOTTOMLESS_BUCKET)",
                         s3_client_bucket(cli->client), s3_client_endpoint(cli->client));
        else if (rc == EINVAL && err != NULL && err->http_status == 400)
            cli_set_hint(cli,
                         "%s rejected the request for bucket '%s': check the bucket name (S3 "
                         "bucket names are 3-63 lowercase letters, digits, dots and hyphens; "
                         "-b/--bucket), the region (--region) and that -e/--endpoint is the S3 "
                         "API's URL",
                         s3_client_endpoint(cli->client), s3_client_bucket(cli->client));
        cli_hint_for_s3(cli, err);
        return rc;
    }
    return 0;
}
