/* cli/ls.c - `ls`: generations of a database newest first (bottomless-cli's format), with
 * details (-v) or as JSON; without -d the databases in the bucket with their newest
 * generation. */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wal/restore.h"

struct ls_opts {
    bool verbose, json;
    long limit; /* -1 = no limit */
    bool has_gen;
    struct gen_id gen;
    bool has_older, has_newer;
    int64_t older_s, newer_s;
};

static int parse_opts(struct cli *cli, int argc, char **argv, struct ls_opts *o, bool *help,
                      struct err *err)
{
    const struct cli_opt opts[] = {
        {"verbose", 'v', CLI_OPT_FLAG, .out.flag = &o->verbose},
        {"limit", 'l', CLI_OPT_COUNT, .out.count = &o->limit},
        {"generation", 'g', CLI_OPT_GEN, .out.gen = &o->gen, .seen = &o->has_gen},
        {"older-than", 0, CLI_OPT_DATE, .out.date_s = &o->older_s, .seen = &o->has_older},
        {"newer-than", 0, CLI_OPT_DATE, .out.date_s = &o->newer_s, .seen = &o->has_newer},
        {"json", 0, CLI_OPT_FLAG, .out.flag = &o->json},
    };
    int rc;

    memset(o, 0, sizeof(*o));
    o->limit = -1;
    rc = cli_parse_opts(cli, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), help, err);
    if (rc != 0 || *help)
        return rc;
    if (o->has_gen && (o->has_older || o->has_newer || o->limit >= 0))
        return cli_usage(cli, err, "-g cannot be combined with -l, --older-than or --newer-than");
    return 0;
}

static bool selected(const struct ls_opts *o, int64_t created_s)
{
    if (o->has_older && created_s >= o->older_s)
        return false;
    if (o->has_newer && created_s < o->newer_s)
        return false;
    return true;
}

static const char *last_component(const char *key)
{
    const char *slash = strrchr(key, '/');

    return slash != NULL ? slash + 1 : key;
}

static void print_details(const struct gen_info *gi, bool created_plain_label)
{
    char t[64], id[GEN_ID_STR_LEN + 1], sz[32];
    uint32_t cc = gi->has_changecounter ? gi->changecounter : 0;

    cli_fmt_time_plain((time_t)gi->created_s, t, sizeof(t));
    printf("\t%s%s\n",
           created_plain_label ? "created at:           " : "created at (UTC):     ", t);
    printf("\tchange counter:       [%u, %u, %u, %u]\n", cc >> 24, (cc >> 16) & 0xff,
           (cc >> 8) & 0xff, cc & 0xff);
    printf("\tconsistent WAL frame: %u\n", gi->last_consistent_frame);
    if (gi->has_meta) {
        printf("\tpage size:            %u\n", gi->meta.page_size);
        printf("\tWAL frame checksum:   %X-%X\n", gi->meta.cksum1, gi->meta.cksum2);
    }
    if (gi->has_dep) {
        gen_id_format(&gi->dep, id);
        printf("\tprevious generation:  %s\n", id);
    }
    cli_fmt_bytes(gi->batch_bytes, sz, sizeof(sz));
    printf("\tWAL batches:          %zu (%s)\n", gi->n_batches, sz);
    if (gi->has_snapshot) {
        cli_fmt_time_zulu(gi->snapshot_mtime, t, sizeof(t));
        printf("\tmain database snapshot:\n");
        printf("\t\tobject:        %s\n", last_component(gi->snapshot_key));
        printf("\t\tobject size:   %llu\n", (unsigned long long)gi->snapshot_size);
        printf("\t\tlast modified: %s\n", t);
    } else {
        printf("\tno main database snapshot file found\n");
    }
}

static void json_gen(const struct gen_id *gen, int64_t created_s, const struct gen_info *gi,
                     bool tombstoned)
{
    char id[GEN_ID_STR_LEN + 1], t[64];

    gen_id_format(gen, id);
    cli_fmt_time_zulu((time_t)created_s, t, sizeof(t));
    printf("{\"generation\": \"%s\", \"created\": \"%s\", \"created_unix\": %lld", id, t,
           (long long)created_s);
    if (tombstoned)
        printf(", \"tombstoned\": true");
    if (gi != NULL) {
        if (gi->has_changecounter)
            printf(", \"change_counter\": %u", gi->changecounter);
        else
            printf(", \"change_counter\": null");
        printf(", \"consistent_wal_frame\": %u", gi->last_consistent_frame);
        if (gi->has_meta)
            printf(", \"page_size\": %u, \"wal_frame_checksum\": \"%X-%X\"", gi->meta.page_size,
                   gi->meta.cksum1, gi->meta.cksum2);
        else
            printf(", \"page_size\": null, \"wal_frame_checksum\": null");
        if (gi->has_dep) {
            gen_id_format(&gi->dep, id);
            printf(", \"previous_generation\": \"%s\"", id);
        } else {
            printf(", \"previous_generation\": null");
        }
        printf(", \"wal_batches\": %zu, \"wal_batch_bytes\": %llu", gi->n_batches,
               (unsigned long long)gi->batch_bytes);
        if (gi->has_snapshot) {
            cli_fmt_time_zulu(gi->snapshot_mtime, t, sizeof(t));
            printf(", \"snapshot\": {\"object\": ");
            cli_json_string(stdout, last_component(gi->snapshot_key));
            printf(", \"size\": %llu, \"last_modified\": \"%s\"}",
                   (unsigned long long)gi->snapshot_size, t);
        } else {
            printf(", \"snapshot\": null");
        }
    }
    printf("}");
}

/* Tombstone of the database, if any (bottomless hides generations created at or before it). */
static int read_tombstone(struct cli *cli, const char *db, bool *has, int64_t *ts, struct err *err)
{
    struct err e2 = {0};
    int rc = layout_read_tombstone(cli->client, db, ts, &e2);

    *has = rc == 0;
    if (rc == ENOENT)
        return 0;
    if (rc != 0) {
        ERR(err, rc, "%s", e2.msg);
        return rc;
    }
    return 0;
}

static int ls_one_gen(struct cli *cli, const struct ls_opts *o, struct err *err)
{
    struct gen_info gi;
    char id[GEN_ID_STR_LEN + 1];
    bool has_tomb = false;
    int64_t tomb = 0;
    int rc;

    memset(&gi, 0, sizeof(gi));
    gen_id_format(&o->gen, id);
    rc = restore_gen_info(cli->client, cli->db_name, &o->gen, &gi, err);
    if (rc == 0 && gi.n_objects == 0)
        rc = ENOENT;
    if (rc == ENOENT) {
        err_clear(err);
        cli_set_hint(cli, "list the generations with '%s -d %s ls'", CLI_NAME, cli->db_name);
        return ERR(err, ENOENT, "generation %s not found for database %s", id, cli->db_name);
    }
    if (rc != 0)
        return rc;
    rc = read_tombstone(cli, cli->db_name, &has_tomb, &tomb, err);
    if (rc != 0)
        return rc;
    if (o->json) {
        printf("[");
        json_gen(&o->gen, gi.created_s, &gi, has_tomb && layout_is_tombstoned(tomb, &o->gen));
        printf("]\n");
        return 0;
    }
    printf("Generation %s for %s\n", id, cli->db_name);
    print_details(&gi, true);
    if (has_tomb && layout_is_tombstoned(tomb, &o->gen))
        printf("\ttombstoned:           yes\n");
    return 0;
}

static int ls_generations(struct cli *cli, const struct ls_opts *o, struct err *err)
{
    struct gen_id *ids = NULL;
    size_t n = 0;
    long printed = 0;
    bool has_tomb = false;
    int64_t tomb = 0;
    int rc;

    rc = layout_list_generations(cli->client, cli->db_name, &ids, &n, err);
    if (rc == 0)
        rc = read_tombstone(cli, cli->db_name, &has_tomb, &tomb, err);
    if (rc != 0)
        goto out;
    if (o->json)
        printf("[");
    else if (o->verbose && n > 0)
        printf("Database %s:\n", cli->db_name);
    for (size_t i = 0; i < n; i++) {
        int64_t created = gen_id_created_s(&ids[i]);
        bool tombstoned = has_tomb && layout_is_tombstoned(tomb, &ids[i]);
        struct gen_info gi;

        if (!selected(o, created))
            continue;
        if (o->limit >= 0 && printed >= o->limit)
            break;
        if (o->verbose) {
            memset(&gi, 0, sizeof(gi));
            rc = restore_gen_info(cli->client, cli->db_name, &ids[i], &gi, err);
            if (rc != 0)
                goto out;
        }
        if (o->json) {
            printf("%s\n  ", printed > 0 ? "," : "");
            json_gen(&ids[i], created, o->verbose ? &gi : NULL, tombstoned);
        } else {
            char id[GEN_ID_STR_LEN + 1], t[64];

            gen_id_format(&ids[i], id);
            cli_fmt_time((time_t)created, t, sizeof(t));
            printf("%s (created: %s)%s\n", id, t, tombstoned ? " [tombstoned]" : "");
            if (o->verbose) {
                print_details(&gi, false);
                printf("\n");
            }
        }
        printed++;
    }
    if (o->json)
        printf("%s]\n", printed > 0 ? "\n" : "");
    else if (n == 0)
        printf("No generations found\n");
out:
    free(ids);
    return rc;
}

static int ls_databases(struct cli *cli, const struct ls_opts *o, struct err *err)
{
    char **names = NULL;
    bool *tombstoned = NULL;
    size_t n = 0;
    long printed = 0;
    int rc;

    if (o->has_gen)
        return cli_require_db(cli, err);
    rc = layout_list_databases(cli->client, &names, &tombstoned, &n, err);
    if (rc != 0)
        return rc;
    if (o->json)
        printf("[");
    for (size_t i = 0; i < n && (o->limit < 0 || printed < o->limit); i++) {
        struct gen_id *ids = NULL;
        size_t n_gens = 0;
        char id[GEN_ID_STR_LEN + 1], t[64];
        int64_t created;

        rc = layout_list_generations(cli->client, names[i], &ids, &n_gens, err);
        if (rc != 0)
            break;
        if (n_gens == 0 || !selected(o, gen_id_created_s(&ids[0]))) {
            free(ids);
            continue;
        }
        /* deleted through a mount: its tombstone hides even the newest generation (read only
         * when the listing shows one) */
        bool has_tomb = false;
        int64_t tomb = 0;
        rc = tombstoned[i] ? read_tombstone(cli, names[i], &has_tomb, &tomb, err) : 0;
        if (rc != 0) {
            free(ids);
            break;
        }
        bool deleted = has_tomb && layout_is_tombstoned(tomb, &ids[0]);
        char tt[64] = "";
        gen_id_format(&ids[0], id);
        created = gen_id_created_s(&ids[0]);
        if (o->json) {
            cli_fmt_time_zulu((time_t)created, t, sizeof(t));
            printf("%s\n  {\"database\": ", printed > 0 ? "," : "");
            cli_json_string(stdout, names[i]);
            printf(", \"generations\": %zu, \"newest_generation\": \"%s\", \"created\": \"%s\", "
                   "\"created_unix\": %lld, \"deleted\": %s",
                   n_gens, id, t, (long long)created, deleted ? "true" : "false");
            if (deleted) {
                cli_fmt_time_zulu((time_t)tomb, tt, sizeof(tt));
                printf(", \"tombstone\": \"%s\"", tt);
            }
            printf("}");
        } else {
            cli_fmt_time((time_t)created, t, sizeof(t));
            if (deleted)
                cli_fmt_time((time_t)tomb, tt, sizeof(tt));
            cli_print_safe(stdout, names[i]);
            printf("  newest: %s (created: %s), %zu generation%s%s%s%s\n", id, t, n_gens,
                   n_gens == 1 ? "" : "s", deleted ? ", deleted at " : "", tt,
                   deleted ? " (restore --ignore-tombstone still reaches it)" : "");
        }
        printed++;
        free(ids);
    }
    if (rc == 0) {
        if (o->json)
            printf("%s]\n", printed > 0 ? "\n" : "");
        else if (n == 0)
            printf("No databases found in bucket %s\n", s3_client_bucket(cli->client));
    }
    layout_names_free(names, n);
    free(tombstoned);
    return rc;
}

int cmd_ls(struct cli *cli, int argc, char **argv, struct err *err)
{
    struct ls_opts o;
    bool help = false;
    int rc;

    rc = parse_opts(cli, argc, argv, &o, &help, err);
    if (rc != 0 || help)
        return rc;
    rc = cli_connect(cli, err);
    if (rc != 0)
        return rc;
    if (cli->db_name == NULL)
        return ls_databases(cli, &o, err);
    if (o.has_gen)
        return ls_one_gen(cli, &o, err);
    return ls_generations(cli, &o, err);
}
