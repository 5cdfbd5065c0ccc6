/* cli/rm.c - `rm`: removes every object of the chosen generations (all listing pages),
 * oldest generation first. The newest restorable chain (the newest generation and its .dep
 * chain back to the generation whose snapshot it restores from) is kept unless --force. */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wal/restore.h"

#define RM_MAX_PASSES 5 /* re-list and delete again if objects appeared meanwhile */

struct rm_args {
    bool has_gen, has_older, verbose, force, dry_run;
    struct gen_id gen;
    int64_t older_s;
};

static int parse_opts(struct cli *cli, int argc, char **argv, struct rm_args *a, bool *help,
                      struct err *err)
{
    const struct cli_opt opts[] = {
        {"generation", 'g', CLI_OPT_GEN, .out.gen = &a->gen, .seen = &a->has_gen},
        {"older-than", 0, CLI_OPT_DATE, .out.date_s = &a->older_s, .seen = &a->has_older},
        {"verbose", 'v', CLI_OPT_FLAG, .out.flag = &a->verbose},
        {"force", 'f', CLI_OPT_FLAG, .out.flag = &a->force},
        {"dry-run", 'n', CLI_OPT_FLAG, .out.flag = &a->dry_run},
    };
    int rc;

    memset(a, 0, sizeof(*a));
    rc = cli_parse_opts(cli, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), help, err);
    if (rc != 0 || *help)
        return rc;
    if (a->has_gen == a->has_older)
        return cli_usage(cli, err, "rm needs exactly one of -g GEN or --older-than DATE");
    return 0;
}

static bool in_set(const struct gen_id *set, size_t n, const struct gen_id *g)
{
    for (size_t i = 0; i < n; i++)
        if (gen_id_eq(&set[i], g))
            return true;
    return false;
}

/* Deletes every object of gen; *n_out = objects removed. */
static int remove_generation(struct cli *cli, const struct rm_args *a, const struct gen_id *gen,
                             size_t *n_out, struct err *err)
{
    char id[GEN_ID_STR_LEN + 1];
    int rc = 0;

    *n_out = 0;
    gen_id_format(gen, id);
    for (int pass = 0; pass < RM_MAX_PASSES; pass++) {
        struct layout_objects objs = {0};
        const char **keys = NULL;

        rc = layout_list_gen_objects(cli->client, cli->db_name, gen, &objs, err);
        if (rc != 0 || objs.n == 0) {
            layout_objects_free(&objs);
            return rc;
        }
        keys = calloc(objs.n, sizeof(*keys));
        if (keys == NULL) {
            layout_objects_free(&objs);
            return ERR(err, ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < objs.n; i++) {
            keys[i] = objs.v[i].key;
            if (a->verbose || a->dry_run) {
                printf("%s ", a->dry_run ? "Would remove" : "Removing");
                cli_print_safe(stdout, keys[i]);
                printf("\n");
            }
        }
        if (!a->dry_run)
            rc = s3_delete_objects(cli->client, keys, objs.n, err);
        if (rc == 0)
            *n_out += objs.n;
        free(keys);
        layout_objects_free(&objs);
        if (rc != 0 || a->dry_run)
            return rc;
    }
    return ERR(err, EAGAIN,
               "generation %s still has objects after %d passes (is a writer "
               "still uploading to it?)",
               id, RM_MAX_PASSES);
}

/* A generation kept right after a removed one (ids are newest first) that has no snapshot and
 * whose .dep names a removed generation can no longer be restored: say so. */
static void warn_orphans(struct cli *cli, const struct rm_args *a, const struct gen_id *ids,
                         size_t n_ids, const bool *removed)
{
    for (size_t k = 1; k < n_ids; k++) {
        struct gen_info gi;
        struct err e = {0};
        char child[GEN_ID_STR_LEN + 1], parent[GEN_ID_STR_LEN + 1];

        if (!removed[k] || removed[k - 1])
            continue;
        memset(&gi, 0, sizeof(gi));
        if (restore_gen_info(cli->client, cli->db_name, &ids[k - 1], &gi, &e) != 0)
            continue; /* best effort */
        for (size_t j = 0; j < n_ids; j++) {
            if (removed[j] && gi.has_dep && !gi.has_snapshot && gen_id_eq(&gi.dep, &ids[j])) {
                gen_id_format(&ids[k - 1], child);
                gen_id_format(&ids[j], parent);
                fprintf(stderr,
                        "%s: warning: generation %s has no snapshot and depends on %s "
                        "generation %s: it can no longer be restored (run '%s -d %s snapshot "
                        "-g %s' before removing its parent)\n",
                        CLI_NAME, child, a->dry_run ? "the to-be-removed" : "the removed", parent,
                        CLI_NAME, cli->db_name, child);
            }
        }
    }
}

int cmd_rm(struct cli *cli, int argc, char **argv, struct err *err)
{
    struct rm_args a;
    struct gen_id *ids = NULL, *chain = NULL;
    size_t n_ids = 0, n_chain = 0, n_removed = 0, n_objects = 0, n_kept = 0;
    bool chain_has_snapshot = false, help = false, *removed = NULL;
    char id[GEN_ID_STR_LEN + 1];
    int rc;

    rc = parse_opts(cli, argc, argv, &a, &help, err);
    if (rc != 0 || help)
        return rc;
    rc = cli_connect_db(cli, err);
    if (rc == 0)
        rc = layout_list_generations(cli->client, cli->db_name, &ids, &n_ids, err);
    if (rc != 0)
        goto out;
    if (n_ids == 0) {
        rc = ERR(err, ENOENT, "no generations found for database %s", cli->db_name);
        goto out;
    }
    removed = calloc(n_ids, sizeof(*removed));
    if (removed == NULL) {
        rc = ERR(err, ENOMEM, "out of memory");
        goto out;
    }
    /* The newest restorable chain; without it we cannot tell what is safe to remove. */
    rc = restore_chain(cli->client, cli->db_name, &ids[0], &chain, &n_chain, &chain_has_snapshot,
                       err);
    if (rc != 0) {
        if (!a.force) {
            err_prefix(err, "cannot determine the newest restorable chain");
            cli_set_hint(cli, "fix the bucket or pass --force to remove anyway");
            goto out;
        }
        err_clear(err);
        rc = 0;
        n_chain = 0;
    }
    if (a.has_gen) {
        if (!in_set(ids, n_ids, &a.gen)) {
            gen_id_format(&a.gen, id);
            rc = ERR(err, ENOENT, "generation %s not found for database %s", id, cli->db_name);
            cli_set_hint(cli, "list the generations with '%s -d %s ls'", CLI_NAME, cli->db_name);
            goto out;
        }
        if (in_set(chain, n_chain, &a.gen) && !a.force) {
            gen_id_format(&a.gen, id);
            rc = ERR(err, EPERM,
                     "refusing to remove generation %s: the newest generation needs it to "
                     "restore",
                     id);
            cli_set_hint(cli, "pass --force to remove it anyway");
            goto out;
        }
    }
    /* Oldest first, so an interrupted run leaves the newer generations whole. */
    for (size_t k = n_ids; k-- > 0;) {
        const struct gen_id *g = &ids[k];
        size_t n = 0;

        if (a.has_gen ? !gen_id_eq(g, &a.gen) : gen_id_created_s(g) >= a.older_s)
            continue;
        gen_id_format(g, id);
        if (in_set(chain, n_chain, g) && !a.force) {
            printf("Kept generation %s: part of the newest restorable chain (use --force to "
                   "remove it)\n",
                   id);
            n_kept++;
            continue;
        }
        rc = remove_generation(cli, &a, g, &n, err);
        if (rc != 0) {
            err_prefix(err, "removing generation %s", id);
            goto out;
        }
        printf("%s generation %s (%zu objects)\n", a.dry_run ? "Would remove" : "Removed", id, n);
        removed[k] = true;
        n_removed++;
        n_objects += n;
    }
    warn_orphans(cli, &a, ids, n_ids, removed);
    printf("%s %zu generation%s (%zu objects) of %s", a.dry_run ? "Would remove" : "Removed",
           n_removed, n_removed == 1 ? "" : "s", n_objects, cli->db_name);
    if (n_kept > 0)
        printf(", kept %zu", n_kept);
    printf("\n");
out:
    free(ids);
    free(chain);
    free(removed);
    return rc;
}
