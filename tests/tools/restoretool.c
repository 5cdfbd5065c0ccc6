/* tests/tools/restoretool.c - drives restore_run() directly (independent of the CLI):
 *
 *   restoretool -b BUCKET -n DB_NAME -o OUTPUT [-g GEN] [-u UTC_TIME] [--strict]
 *               [--no-verify-crc] [--parallel N] [--chain]
 *
 * Prints one "key: value" line per result field; exit 0 on success (also partial), 1 on
 * failure (message on stderr as "error: ..."), 2 on usage errors. --chain prints the .dep
 * chain of the chosen generation instead of restoring. */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3/s3.h"
#include "wal/layout.h"
#include "wal/restore.h"

int main(int argc, char **argv)
{
    enum { O_STRICT = 1000, O_NOCRC, O_PAR, O_CHAIN };
    static const struct option opts[] = {
        {"bucket", required_argument, NULL, 'b'}, {"name", required_argument, NULL, 'n'},
        {"output", required_argument, NULL, 'o'}, {"generation", required_argument, NULL, 'g'},
        {"utc-time", required_argument, NULL, 'u'}, {"strict", no_argument, NULL, O_STRICT},
        {"no-verify-crc", no_argument, NULL, O_NOCRC}, {"parallel", required_argument, NULL, O_PAR},
        {"chain", no_argument, NULL, O_CHAIN}, {NULL, 0, NULL, 0}};
    struct restore_opts o;
    struct restore_result r;
    struct gen_id gen;
    const char *bucket = NULL;
    bool chain = false;
    struct err e = {0};
    int opt;

    restore_opts_init(&o);
    while ((opt = getopt_long(argc, argv, "b:n:o:g:u:", opts, NULL)) != -1) {
        switch (opt) {
        case 'b': bucket = optarg; break;
        case 'n': o.db_name = optarg; break;
        case 'o': o.target = optarg; break;
        case 'g':
            if (gen_id_parse(optarg, strlen(optarg), &gen, &e)) {
                fprintf(stderr, "error: -g: %s\n", e.msg);
                return 2;
            }
            o.gen = &gen;
            break;
        case 'u':
            if (layout_parse_utc(optarg, &o.time_s, &e)) {
                fprintf(stderr, "error: -u: %s\n", e.msg);
                return 2;
            }
            o.has_time = true;
            break;
        case O_STRICT: o.strict = true; break;
        case O_NOCRC: o.no_verify_crc = true; break;
        case O_PAR: o.parallel = (int)strtol(optarg, NULL, 10); break;
        case O_CHAIN: chain = true; break;
        default: return 2;
        }
    }
    if (!bucket || !o.db_name || (!o.target && !chain)) {
        fprintf(stderr, "usage: restoretool -b BUCKET -n DB_NAME -o OUTPUT [options]\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct s3_conf conf;
    s3_conf_init(&conf);
    conf.bucket = strdup(bucket);
    struct s3_client *c = NULL;
    int rc = s3_conf_resolve(&conf, &e);
    if (!rc) {
        c = s3_client_new(&conf, &e);
        rc = c ? 0 : (e.code ? e.code : 1);
    }
    char g[GEN_ID_STR_LEN + 1];
    if (!rc && chain) {
        struct gen_id chosen, *ids = NULL;
        size_t n = 0;
        bool has_snap = false;
        rc = restore_choose_generation(c, o.db_name, o.gen, o.has_time, o.time_s, &chosen, &e);
        if (!rc)
            rc = restore_chain(c, o.db_name, &chosen, &ids, &n, &has_snap, &e);
        for (size_t i = 0; !rc && i < n; i++) {
            gen_id_format(&ids[i], g);
            printf("chain: %s\n", g);
        }
        if (!rc)
            printf("chain_has_snapshot: %d\n", has_snap);
        free(ids);
    } else if (!rc) {
        rc = restore_run(c, &o, &r, &e);
        if (!rc) {
            gen_id_format(&r.gen, g);
            printf("generation: %s\n", g);
            gen_id_format(&r.snapshot_gen, g);
            printf("snapshot: %s\n", r.has_snapshot ? r.snapshot_key : "none");
            printf("generations: %u\n", r.n_generations);
            printf("frames: %llu\n", (unsigned long long)r.frames_applied);
            printf("transactions: %llu\n", (unsigned long long)r.txns_applied);
            printf("last_frame: %u\n", r.last_frame);
            printf("last_batch_ts: %llu\n", (unsigned long long)r.last_batch_ts);
            printf("page_size: %u\n", r.page_size);
            printf("size: %llu\n", (unsigned long long)r.db_size);
            printf("partial: %d\n", r.partial);
            printf("reason: %s\n", r.reason);
            printf("integrity: %s\n", r.integrity_ok ? "ok" : "failed");
        }
    }
    if (rc)
        fprintf(stderr, "error: %s\n", e.msg[0] ? e.msg : "failed");
    s3_client_free(c);
    s3_conf_free(&conf);
    curl_global_cleanup();
    return rc ? 1 : 0;
}
