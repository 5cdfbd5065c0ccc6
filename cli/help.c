/* cli/help.c - help texts of bottomless-cli (kept in step with docs/bottomless-cli.1). */
#include "cli/cli.h"

#include <string.h>

static const char main_help[] =
    "usage: " CLI_NAME " [GLOBAL OPTIONS] COMMAND [OPTIONS]\n"
    "\n"
    "Lists, restores, verifies and prunes SQLite databases replicated to S3 in the libSQL\n"
    "\"bottomless\" layout (by bottomlessfs or by libSQL/sqld).\n"
    "\n"
    "Global options (before the command):\n"
    "  -e, --endpoint URL     S3 endpoint (LIBSQL_BOTTOMLESS_ENDPOINT, default " S3_DEFAULT_ENDPOINT
    ")\n"
    "  -b, --bucket NAME      bucket (LIBSQL_BOTTOMLESS_BUCKET, default " S3_DEFAULT_BUCKET ")\n"
    "  -d, --database NAME    database name (db_name) in the bucket\n"
    "                         (LIBSQL_BOTTOMLESS_DATABASE_ID)\n"
    "      --region REGION    signing region (LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION)\n"
    "      --ca-file FILE     trust this CA bundle for https endpoints\n"
    "      --insecure         do not verify the TLS certificate of the endpoint\n"
    "      --virtual-hosted   bucket.host addressing instead of path style\n"
    "      --log-level LEVEL  diagnostics on stderr (BOTTOMLESS_LOG): error (default), warn,\n"
    "                         info, debug, trace\n"
    "  -h, --help             this help\n"
    "  -V, --version          print the version\n"
    "\n"
    "Commands:\n"
    "  ls        list generations of a database (without -d: the databases in the bucket)\n"
    "  restore   restore a database (newest, a generation, or a point in time) to a file\n"
    "  verify    restore to a temporary file and check it\n"
    "  rm        remove generations\n"
    "  snapshot  build and upload the snapshot of a generation from its parent chain\n"
    "  help CMD  help on a command ('" CLI_NAME " CMD --help' works too)\n"
    "\n"
    "Credentials: LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID, LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY,\n"
    "LIBSQL_BOTTOMLESS_AWS_SESSION_TOKEN, then AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, then\n"
    "~/.aws/credentials. Dates are UTC: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[Z].\n"
    "Exit status: 0 ok, 1 failed, 2 usage error. See " CLI_NAME "(1).\n";

static const char ls_help[] =
    "usage: " CLI_NAME " [-d DB] ls [-v] [-l N] [-g GEN] [--older-than DATE]\n"
    "                           [--newer-than DATE] [--json]\n"
    "\n"
    "Lists the generations of database DB, newest first:\n"
    "  <generation> (created: 2023-11-29T07:34:00+00:00)\n"
    "Without -d, lists the databases in the bucket with their newest generation.\n"
    "\n"
    "  -v, --verbose          details: created at, change counter, consistent WAL frame,\n"
    "                         page size, WAL frame checksum, previous generation, snapshot\n"
    "  -l, --limit N          print at most N generations\n"
    "  -g, --generation GEN   only this generation (with details)\n"
    "      --older-than DATE  only generations created before DATE\n"
    "      --newer-than DATE  only generations created at or after DATE\n"
    "      --json             machine-readable output (a JSON array)\n"
    "  -h, --help             this help\n";

static const char restore_help[] =
    "usage: " CLI_NAME " -d DB restore [-g GEN | -u UTC_TIME] [--ignore-tombstone] [-o PATH]\n"
    "       [--force] [--strict]\n"
    "\n"
    "Restores database DB from the bucket into a local file: the newest generation, the\n"
    "generation GEN, or the state at UTC_TIME (point in time). The file is written to a\n"
    "temporary file next to PATH, synced and renamed over it; stale PATH-wal and PATH-shm\n"
    "are removed; then PRAGMA integrity_check runs (\"Verification: ok\").\n"
    "\n"
    "  -g, --generation GEN   restore this generation\n"
    "  -u, --utc-time TIME    restore the state at TIME (YYYY-MM-DD[THH:MM:SS][Z], UTC)\n"
    "      --ignore-tombstone restore a deleted database: removing it through a mount\n"
    "                         writes DB.tombstone, which hides every generation before it\n"
    "  -o, --output PATH      output file (default ./<database name>, in the current\n"
    "                         directory only)\n"
    "  -f, --force            overwrite an existing non-empty PATH\n"
    "      --strict           fail on a corrupt or missing object instead of stopping at the\n"
    "                         last consistent transaction\n"
    "  -h, --help             this help\n";

static const char verify_help[] =
    "usage: " CLI_NAME " -d DB verify [-g GEN | -u UTC_TIME] [--ignore-tombstone]\n"
    "\n"
    "Restores database DB (newest generation, GEN, or the state at UTC_TIME) into a temporary\n"
    "file, checks every object and the WAL checksum chain strictly, runs\n"
    "PRAGMA integrity_check, and prints \"Verification: ok\" or what failed (exit 1).\n"
    "\n"
    "  -g, --generation GEN   verify this generation\n"
    "  -u, --utc-time TIME    verify the state at TIME (UTC)\n"
    "      --ignore-tombstone verify a deleted database (see restore --help)\n"
    "  -h, --help             this help\n";

static const char rm_help[] =
    "usage: " CLI_NAME " -d DB rm (-g GEN | --older-than DATE) [-v] [--force] [--dry-run]\n"
    "\n"
    "Removes every object of the chosen generations (all listing pages). The newest\n"
    "restorable chain - the newest generation and the .dep chain back to the snapshot it\n"
    "restores from - is never removed unless --force is given.\n"
    "\n"
    "  -g, --generation GEN   remove this generation\n"
    "      --older-than DATE  remove the generations created before DATE (UTC)\n"
    "  -v, --verbose          print every removed object\n"
    "  -f, --force            also remove generations of the newest restorable chain\n"
    "  -n, --dry-run          only print what would be removed\n"
    "  -h, --help             this help\n";

static const char snapshot_help[] =
    "usage: " CLI_NAME " -d DB snapshot [-g GEN] [-c zstd|gz|raw]\n"
    "\n"
    "Builds the snapshot of generation GEN (default: the newest) from its parent chain\n"
    "(restore of the parent generation named by GEN's .dep), checks it with\n"
    "PRAGMA integrity_check, and uploads it as GEN's db.<ext> and .changecounter, so that\n"
    "restores of GEN and later generations no longer need the older generations.\n"
    "\n"
    "  -g, --generation GEN   the generation to snapshot (default: the newest)\n"
    "  -c, --compression C    zstd (default), gz or raw\n"
    "  -f, --force            replace an existing snapshot\n"
    "  -h, --help             this help\n";

void cli_help_main(FILE *f)
{
    fputs(main_help, f);
}

bool cli_help_command(FILE *f, const char *cmd)
{
    static const struct {
        const char *name;
        const char *text;
    } helps[] = {
        {"ls", ls_help}, {"restore", restore_help},   {"verify", verify_help},
        {"rm", rm_help}, {"snapshot", snapshot_help},
    };

    for (size_t i = 0; i < sizeof(helps) / sizeof(helps[0]); i++) {
        if (strcmp(cmd, helps[i].name) == 0) {
            fputs(helps[i].text, f);
            return true;
        }
    }
    return false;
}
