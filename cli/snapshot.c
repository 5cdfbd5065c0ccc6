/* cli/snapshot.c - `snapshot`: builds the snapshot of a generation that has none from its
 * parent chain (the snapshot of G is the end state of its .dep parent P), checks it with
 * PRAGMA integrity_check, and uploads it as G's db.<ext> and .changecounter. */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "wal/restore.h"

struct snapshot_args {
    bool has_gen, force;
    struct gen_id gen;
    enum compression comp;
};

static int parse_opts(struct cli *cli, int argc, char **argv, struct snapshot_args *a, bool *help,
                      struct err *err)
{
    const struct cli_opt opts[] = {
        {"generation", 'g', CLI_OPT_GEN, .out.gen = &a->gen, .seen = &a->has_gen},
        {"compression", 'c', CLI_OPT_COMPRESSION, .out.comp = &a->comp},
        {"force", 'f', CLI_OPT_FLAG, .out.flag = &a->force},
    };

    memset(a, 0, sizeof(*a));
    a->comp = COMPRESS_DEFAULT;
    return cli_parse_opts(cli, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), help, err);
}

int cmd_snapshot(struct cli *cli, int argc, char **argv, struct err *err)
{
    struct snapshot_args a;
    struct gen_info gi;
    struct restore_opts o;
    struct restore_result r;
    struct err cleanup_err = {0};
    char id[GEN_ID_STR_LEN + 1], parent[GEN_ID_STR_LEN + 1], dir[4096], target[4200];
    bool help = false, have_dir = false;
    struct stat st;
    int rc;

    rc = parse_opts(cli, argc, argv, &a, &help, err);
    if (rc != 0 || help)
        return rc;
    rc = cli_connect_db(cli, err);
    if (rc == 0 && !a.has_gen)
        rc = cli_newest_gen(cli, &a.gen, err);
    if (rc != 0)
        return rc;
    gen_id_format(&a.gen, id);
    memset(&gi, 0, sizeof(gi));
    rc = restore_gen_info(cli->client, cli->db_name, &a.gen, &gi, err);
    if (rc == 0 && gi.n_objects == 0) {
        cli_set_hint(cli, "list the generations with '%s -d %s ls'", CLI_NAME, cli->db_name);
        rc = ERR(err, ENOENT, "generation %s not found for database %s", id, cli->db_name);
    }
    if (rc != 0)
        return rc;
    if (gi.has_snapshot && !a.force) {
        cli_set_hint(cli, "pass --force to rebuild and replace it");
        return ERR(err, EEXIST, "generation %s already has a snapshot (%s)", id,
                   strrchr(gi.snapshot_key, '/') ? strrchr(gi.snapshot_key, '/') + 1
                                                 : gi.snapshot_key);
    }
    if (!gi.has_dep) {
        cli_set_hint(cli, "only a generation with a parent (.dep) can get a snapshot built "
                          "from the bucket");
        return ERR(err, ENOENT,
                   "cannot create a snapshot of generation %s: parent generation not found "
                   "(it has no .dep)",
                   id);
    }
    gen_id_format(&gi.dep, parent);

    snprintf(dir, sizeof(dir), "%s/bottomless-snapshot-XXXXXX", cli->tmpdir);
    if (mkdtemp(dir) == NULL) {
        rc = errno;
        cli_set_hint(cli, "set TMPDIR to a writable directory with enough space");
        return ERR(err, rc, "cannot create a temporary directory in %s: %s", cli->tmpdir,
                   errno_name(rc));
    }
    have_dir = true;
    snprintf(target, sizeof(target), "%s/db", dir);
    restore_opts_init(&o);
    o.db_name = cli->db_name;
    o.target = target;
    o.gen = &gi.dep;
    o.strict = true; /* a snapshot must be the parent's complete end state */
    o.no_verify_crc = !cli->verify_crc;
    o.scratch_dir = dir;
    memset(&r, 0, sizeof(r));
    rc = restore_run(cli->client, &o, &r, err);
    if (rc != 0) {
        err_prefix(err, "restoring parent generation %s", parent);
        goto out;
    }
    if (!r.integrity_ok) {
        rc = ERR(err, EBADMSG,
                 "parent generation %s restores to a database that fails "
                 "PRAGMA integrity_check",
                 parent);
        goto out;
    }
    if (stat(target, &st) != 0 || st.st_size == 0) {
        rc = ERR(err, ENOENT,
                 "parent generation %s restores to an empty database; nothing to "
                 "snapshot",
                 parent);
        goto out;
    }
    rc = restore_upload_snapshot(cli->client, cli->db_name, &a.gen, target, a.comp, err);
    if (rc != 0)
        goto out;
    if (gi.has_snapshot) { /* --force: drop the old object if it had another compression */
        char new_key[LAYOUT_KEY_MAX];

        if (layout_key_snapshot(cli->db_name, &a.gen, a.comp, new_key) == 0 &&
            strcmp(new_key, gi.snapshot_key) != 0) {
            rc = s3_delete_object(cli->client, gi.snapshot_key, err);
            if (rc != 0)
                goto out;
        }
    }
    printf("snapshot uploaded for generation: %s\n", id);
    printf("  built from:   %s (%u generation%s, %llu frames)\n", parent, r.n_generations,
           r.n_generations == 1 ? "" : "s", (unsigned long long)r.frames_applied);
    printf("  object:       db.%s\n", compression_ext(a.comp));
    printf("  size:         %llu bytes\n", (unsigned long long)st.st_size);
    printf("Verification: ok\n");
out:
    if (have_dir && fileio_rm_rf(dir, &cleanup_err) != 0)
        fprintf(stderr, "%s: warning: could not remove %s: %s\n", CLI_NAME, dir, cleanup_err.msg);
    return rc;
}
