/* tests/unit/test_fs_replica.c - the pure parts of the replication glue (fs/replica.c), the lazy
 * cache's answers (fs/lazy.c) and the status JSON (fs/status.c), compiled in here because fs/
 * has no library. The S3 and FUSE parts are covered by tests/integration/6*-repl-*.sh. */
#include "../../fs/lazy.c"
#include "../../fs/replica.c"
#include "../../fs/status.c"

#include <criterion/criterion.h>

Test(replica, database_header_is_the_sixteen_magic_bytes)
{
    static const char good[] = "SQLite format 3\0rest";
    cr_assert(replica_is_db_header(good, 16));
    cr_assert(replica_is_db_header(good, sizeof good));
    cr_assert_not(replica_is_db_header(good, 15), "short header");
    cr_assert_not(replica_is_db_header("SQLite format 4\0", 16));
    cr_assert_not(replica_is_db_header("SQLite format 3 ", 16), "NUL is part of the magic");
}

Test(replica, names_by_suffix)
{
    cr_assert_eq(replica_name_kind("app.db"), REPLICA_NAME_MAIN);
    cr_assert_eq(replica_name_kind("d/app.db-wal"), REPLICA_NAME_WAL);
    cr_assert_eq(replica_name_kind("app.db-shm"), REPLICA_NAME_SIDECAR);
    cr_assert_eq(replica_name_kind("app.db-journal"), REPLICA_NAME_SIDECAR);
    cr_assert_eq(replica_name_kind("-wal"), REPLICA_NAME_MAIN, "no owner name");
    cr_assert_eq(replica_name_kind("d/-wal"), REPLICA_NAME_MAIN, "no owner name in dir");
    cr_assert_eq(replica_name_kind("wal"), REPLICA_NAME_MAIN);
}

Test(replica, wal_owner_strips_the_suffix)
{
    char out[64];
    cr_assert(replica_wal_owner("d/app.db-wal", out, sizeof out));
    cr_assert_str_eq(out, "d/app.db");
    cr_assert_not(replica_wal_owner("app.db", out, sizeof out));
    cr_assert_not(replica_wal_owner("a-very-long-name.db-wal", out, 8), "too small");
}

Test(replica, bucket_errors_name_cause_and_fix)
{
    char m[512];
    replica_bucket_error(EACCES, "b", "http://127.0.0.1:1", "403 SignatureDoesNotMatch", m,
                         sizeof m);
    cr_assert(strstr(m, "refused the credentials") && strstr(m, "fix:") &&
                  strstr(m, "LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID"),
              "%s", m);
    replica_bucket_error(ENOENT, "b", "http://127.0.0.1:1", "404", m, sizeof m);
    cr_assert(strstr(m, "does not exist") && strstr(m, "aws s3 mb s3://b"), "%s", m);
    replica_bucket_error(EAGAIN, "b", "http://127.0.0.1:1", "connect", m, sizeof m);
    cr_assert(strstr(m, "cannot reach") && strstr(m, "EAGAIN") && strstr(m, "fix:"), "%s", m);
}

Test(status, json_strings_are_escaped)
{
    struct buf b;
    buf_init(&b, 1024);
    cr_assert_eq(status_json_string(&b, "a\"b\\c\n\x01\x7f%2F"), 0);
    cr_assert_str_eq((const char *)b.data, "\"a\\\"b\\\\c\\u000a\\u0001\\u007f%2F\"");
    buf_reset(&b);
    cr_assert_eq(status_json_string(&b, NULL), 0);
    cr_assert_str_eq((const char *)b.data, "\"\"");
    buf_free(&b);
}

Test(status, renders_without_replicator)
{
    struct buf b;
    struct status_src src = {.bucket = "bk", .endpoint = "http://127.0.0.1:9", .durable = true};
    buf_init(&b, 4096);
    cr_assert_eq(status_render(&src, &b), 0);
    cr_assert_str_eq((const char *)b.data, "{\"version\":1,\"bucket\":\"bk\",\"endpoint\":"
                                           "\"http://127.0.0.1:9\",\"durable\":true,"
                                           "\"databases\":[]}\n");
    buf_free(&b);
}

Test(status, overflow_is_reported)
{
    struct buf b;
    struct status_src src = {.bucket = "bucket", .endpoint = "http://127.0.0.1:9"};
    buf_init(&b, 16);
    cr_assert_eq(status_render(&src, &b), EMSGSIZE);
    buf_free(&b);
}

/* The lazy cache, filled by hand (no S3): files, virtual directories, listing per directory,
 * forgetting. */
static struct lazy *lazy_with(const char *const *paths, size_t n)
{
    struct lazy_conf c = {.backing_dir = "/nonexistent", .backing_fd = -1, .ttl_ms = 1000000};
    struct lazy *lz = lazy_new(&c, NULL);
    cr_assert_not_null(lz);
    lz->entries = calloc(n, sizeof(*lz->entries));
    for (size_t i = 0; i < n; i++) {
        lz->entries[i].path = strdup(paths[i]);
        lz->entries[i].db_name = strdup(paths[i]);
        lz->entries[i].size = 4096 * (i + 1);
        lz->entries[i].size_known = true;
        lz->entries[i].created_s = 1700000000;
    }
    lz->n_entries = n;
    lz->listed = true;
    lz->listed_mono_ms = clock_mono_ms();
    return lz;
}

struct seen {
    char names[8][64];
    mode_t modes[8];
    ino_t inos[8];
    int n;
};

static void collect(void *arg, const char *name, const struct stat *st)
{
    struct seen *s = arg;
    cr_assert_lt(s->n, 8);
    snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
    s->modes[s->n] = st->st_mode;
    s->inos[s->n] = st->st_ino;
    s->n++;
}

Test(lazy, lookup_files_and_virtual_directories)
{
    static const char *const p[] = {"a.db", "sub/b.db", "sub/deeper/c.db"};
    struct lazy *lz = lazy_with(p, 3);
    struct stat st;

    cr_assert_eq(lazy_lookup(lz, "a.db", &st), 0);
    cr_assert(S_ISREG(st.st_mode));
    cr_assert_eq(st.st_size, 4096);
    cr_assert_neq(st.st_ino, 0);
    cr_assert_eq(lazy_lookup(lz, "sub", &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(lazy_lookup(lz, "sub/deeper", &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(lazy_lookup(lz, "su", &st), ENOENT, "prefix of a name is not a dir");
    cr_assert_eq(lazy_lookup(lz, "", &st), ENOENT);
    cr_assert_eq(lazy_lookup(lz, "nope.db", &st), ENOENT);
    lazy_free(lz);
}

Test(lazy, list_emits_one_level_once)
{
    static const char *const p[] = {"a.db", "sub/b.db", "sub/deeper/c.db", "sub/d.db"};
    struct lazy *lz = lazy_with(p, 4);
    struct seen root = {0}, sub = {0};

    cr_assert_eq(lazy_list(lz, "", collect, &root), 0);
    cr_assert_eq(root.n, 2);
    cr_assert_str_eq(root.names[0], "a.db");
    cr_assert(S_ISREG(root.modes[0]));
    cr_assert_str_eq(root.names[1], "sub");
    cr_assert(S_ISDIR(root.modes[1]));
    cr_assert_neq(root.inos[0], root.inos[1]);
    cr_assert_eq(lazy_list(lz, "sub", collect, &sub), 0);
    cr_assert_eq(sub.n, 3, "b.db, deeper, d.db");
    lazy_free(lz);
}

Test(lazy, forget_hides_a_name)
{
    static const char *const p[] = {"a.db", "b.db"};
    struct lazy *lz = lazy_with(p, 2);
    struct stat st;

    lazy_forget(lz, "a.db");
    cr_assert_eq(lazy_lookup(lz, "a.db", &st), ENOENT);
    cr_assert_eq(lazy_lookup(lz, "b.db", &st), 0);
    pthread_mutex_lock(&lz->mu);
    cr_assert(hidden_locked(lz, "a.db", 1700000000), "older generation stays hidden");
    cr_assert_not(hidden_locked(lz, "a.db", INT64_MAX / 2), "a newer generation shows again");
    pthread_mutex_unlock(&lz->mu);
    lazy_forget(lz, "a.db"); /* twice: one hidden record */
    cr_assert_not_null(lz->hidden);
    cr_assert_null(lz->hidden->next);
    lazy_free(lz);
}
