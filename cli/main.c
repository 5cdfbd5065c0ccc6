/* cli/main.c - bottomless-cli entry point: global options, command dispatch, the final
 * error report ("bottomless-cli: error: ..." + hint) and the exit code (0 ok, 1 failed,
 * 2 usage). Commands live in ls.c, restore.c, rm.c, snapshot.c; see cli/cli.h. */
#include "cli/cli.h"

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

typedef int command_fn(struct cli *cli, int argc, char **argv, struct err *err);

static const struct {
    const char *name;
    command_fn *fn;
} commands[] = {
    {"ls", cmd_ls}, {"restore", cmd_restore},   {"verify", cmd_verify},
    {"rm", cmd_rm}, {"snapshot", cmd_snapshot},
};

static command_fn *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].fn;
    return NULL;
}

/* "help", "help CMD" */
static int run_help(struct cli *cli, int argc, char **argv, struct err *err)
{
    if (argc < 2) {
        cli_help_main(stdout);
        return 0;
    }
    if (argc > 2)
        return cli_usage(cli, err, "help takes one command name");
    if (!cli_help_command(stdout, argv[1]))
        return cli_usage(cli, err, "unknown command '%s'", argv[1]);
    return 0;
}

static int report(struct cli *cli, int rc, const struct err *err)
{
    if (rc == 0)
        return CLI_EXIT_OK;
    fflush(stdout);
    fprintf(stderr, "%s: error: %s\n", CLI_NAME, err->msg[0] != '\0' ? err->msg : errno_name(rc));
    if (cli->hint[0] != '\0')
        fprintf(stderr, "%s: hint: %s\n", CLI_NAME, cli->hint);
    return cli->usage_error ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    struct err err = {0};
    int cmd_index = 0;
    bool done = false;
    command_fn *fn;
    int rc;

    signal(SIGPIPE, SIG_IGN);
    log_init(LOG_LEVEL_ERROR, false, CLI_NAME);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "%s: error: libcurl initialisation failed\n", CLI_NAME);
        return CLI_EXIT_FAILED;
    }
    rc = cli_config_parse(&cli, argc, argv, &cmd_index, &done, &err);
    log_init((enum log_level)cli.log_level, false, CLI_NAME);
    if (rc == 0 && !done) {
        if (cmd_index >= argc) {
            cli_help_main(stderr);
            rc = cli_usage(&cli, &err, "no command given");
        } else if (strcmp(argv[cmd_index], "help") == 0) {
            rc = run_help(&cli, argc - cmd_index, argv + cmd_index, &err);
        } else {
            fn = find_command(argv[cmd_index]);
            if (fn == NULL) {
                rc = cli_usage(&cli, &err, "unknown command '%s'", argv[cmd_index]);
            } else {
                cli.command = argv[cmd_index];
                rc = fn(&cli, argc - cmd_index, argv + cmd_index, &err);
                if (rc != 0 && !cli.usage_error)
                    cli_hint_for_s3(&cli, &err);
            }
        }
    }
    if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout))) {
        rc = errno != 0 ? errno : EIO;
        ERR(&err, rc, "writing to standard output: %s", errno_name(rc));
    }
    if (rc == EPIPE && strstr(err.msg, "standard output") != NULL)
        rc = CLI_EXIT_FAILED; /* the reader went away (e.g. `| head`): no message */
    else
        rc = report(&cli, rc, &err);
    cli_free(&cli);
    curl_global_cleanup();
    return rc;
}
