/* tests/tools/s3check.c - exercises every s3/ operation against $LIBSQL_BOTTOMLESS_ENDPOINT
 * (credentials and bucket resolved like the daemon: s3_conf_resolve). Used by
 * tests/integration/1*-s3-*.sh.
 *
 * usage: s3check [options] COMMAND ARGS...
 *   options: --bucket B --endpoint URL --access-key K --secret S --attempts N
 *            --backoff-ms N --backoff-max-ms N --part-size BYTES --threshold BYTES
 *            --parallel N --low-speed-s N --connect-timeout-ms N --virtual --stats
 *            --log-level L
 *   headbucket | mkbucket | ensure
 *   put KEY FILE            PutObject from memory
 *   putfd KEY FILE [LEN]    PutObject from an fd (multipart at --threshold); LEN claims
 *                           another length (a longer one makes a part read fail)
 *   get KEY OUT             GetObject into memory, written to OUT
 *   getrange KEY OFF LEN OUT
 *   getfd KEY OUT           GetObject to an fd (parallel ranges for big objects)
 *   stream KEY OUT          streamed GetObject (callback writes OUT)
 *   head KEY                prints "size=N etag=E mtime=T"
 *   rm KEY                  DeleteObject
 *   rmmany KEY...           DeleteObjects ("-" reads keys from stdin, one per line)
 *   ls [--v1] [--prefix P] [--delimiter D] [--max-keys N] [--start-after S]
 *                           every page: "K key size etag" / "P prefix", then "pages N"
 *   putmany PREFIX N        N objects PREFIXnnnnn (body = key) with 8 threads
 *   concurrent KEY FILE N   N threads GET KEY at once, each must equal FILE
 * Errors: "s3check: ENAME: message" on stderr, exit 1. --stats prints the counters. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <signal.h>

#include "common/fileio.h"
#include "common/log.h"
#include "s3/s3.h"

struct ctx {
    struct s3_client *c;
    struct err err;
    bool stats;
};

static int die(struct ctx *x, int rc)
{
    fprintf(stderr, "s3check: %s: %s\n", errno_name(rc), x->err.msg[0] ? x->err.msg : "failed");
    return 1;
}

static int read_file(const char *path, uint8_t **data, size_t *len, struct err *err)
{
    return fileio_read_file(path, (size_t)1 << 34, data, len, err);
}

static int write_out(const char *path, const void *p, size_t n, struct err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return ERR(err, errno, "open %s", path);
    int rc = fileio_write_all(fd, p, n);
    close(fd);
    return rc ? ERR(err, rc, "write %s", path) : 0;
}

static int cmd_put(struct ctx *x, const char *key, const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = read_file(path, &data, &len, &x->err);
    if (rc == 0)
        rc = s3_put_object(x->c, key, data, len, &x->err);
    free(data);
    return rc;
}

/* claimed_len > 0 claims a length other than the file's (tests a failing part read). */
static int cmd_putfd(struct ctx *x, const char *key, const char *path, uint64_t claimed_len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0)
        return ERR(&x->err, errno, "open %s", path);
    uint64_t len = claimed_len ? claimed_len : (uint64_t)st.st_size;
    int rc = s3_put_object_fd(x->c, key, fd, len, &x->err);
    close(fd);
    return rc;
}

static int cmd_get(struct ctx *x, const char *key, bool ranged, uint64_t off, uint64_t len,
                   const char *out)
{
    struct buf b;
    buf_init(&b, (size_t)1 << 33);
    int rc = ranged ? s3_get_object_range(x->c, key, off, len, &b, &x->err)
                    : s3_get_object(x->c, key, &b, &x->err);
    if (rc == 0)
        rc = write_out(out, b.data, b.len, &x->err);
    buf_free(&b);
    return rc;
}

static int cmd_getfd(struct ctx *x, const char *key, const char *out)
{
    uint64_t size = 0;
    int fd = open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return ERR(&x->err, errno, "open %s", out);
    int rc = s3_get_object_to_fd(x->c, key, fd, &size, &x->err);
    if (rc == 0 && ftruncate(fd, (off_t)size) != 0)
        rc = ERR(&x->err, errno, "truncate %s", out);
    close(fd);
    if (rc == 0)
        printf("size=%llu\n", (unsigned long long)size);
    return rc;
}

static int stream_cb(void *arg, const uint8_t *p, size_t len)
{
    return fileio_write_all(*(int *)arg, p, len);
}

static int cmd_stream(struct ctx *x, const char *key, const char *out)
{
    uint64_t size = 0;
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return ERR(&x->err, errno, "open %s", out);
    int rc = s3_get_object_stream(x->c, key, stream_cb, &fd, &size, &x->err);
    close(fd);
    if (rc == 0)
        printf("size=%llu\n", (unsigned long long)size);
    return rc;
}

static int cmd_head(struct ctx *x, const char *key)
{
    struct s3_object_info info;
    int rc = s3_head_object(x->c, key, &info, &x->err);
    if (rc == 0)
        printf("size=%llu etag=%s mtime=%lld\n", (unsigned long long)info.size, info.etag,
               (long long)info.last_modified);
    return rc;
}

static int cmd_rmmany(struct ctx *x, int argc, char **argv)
{
    char **keys = NULL;
    size_t n = 0, cap = 0;
    char line[4096];
    int rc;
    if (argc == 1 && strcmp(argv[0], "-") == 0) {
        while (fgets(line, sizeof line, stdin) != NULL) {
            line[strcspn(line, "\n")] = '\0';
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                keys = realloc(keys, cap * sizeof *keys);
            }
            keys[n++] = strdup(line);
        }
        rc = s3_delete_objects(x->c, (const char *const *)keys, n, &x->err);
        for (size_t i = 0; i < n; i++)
            free(keys[i]);
        free(keys);
        return rc;
    }
    return s3_delete_objects(x->c, (const char *const *)argv, (size_t)argc, &x->err);
}

static int print_entry(void *arg, const struct s3_object_info *info, bool is_prefix)
{
    (void)arg;
    if (is_prefix)
        printf("P %s\n", info->key);
    else
        printf("K %s %llu %s\n", info->key, (unsigned long long)info->size, info->etag);
    return 0;
}

static int cmd_ls(struct ctx *x, int argc, char **argv)
{
    struct s3_list_opts o = {0};
    char *token = NULL;
    int pages = 0, rc = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--v1") == 0)
            o.v1 = true;
        else if (i + 1 < argc && strcmp(argv[i], "--prefix") == 0)
            o.prefix = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--delimiter") == 0)
            o.delimiter = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--start-after") == 0)
            o.start_after = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--max-keys") == 0)
            o.max_keys = (int)strtol(argv[++i], NULL, 10);
        else
            return ERR(&x->err, EINVAL, "ls: unknown option %s", argv[i]);
    }
    do { /* page by page through s3_list_page, to count pages */
        struct s3_list_page p;
        rc = s3_list_page(x->c, &o, token, &p, &x->err);
        free(token);
        token = NULL;
        if (rc)
            break;
        pages++;
        for (size_t i = 0; i < p.n_objects; i++)
            print_entry(NULL, &p.objects[i], false);
        for (size_t i = 0; i < p.n_prefixes; i++)
            printf("P %s\n", p.prefixes[i]);
        if (p.truncated) {
            token = p.next;
            p.next = NULL;
        }
        s3_list_page_free(&p);
    } while (token != NULL);
    if (rc == 0)
        printf("pages %d\n", pages);
    return rc;
}

static int cmd_lsall(struct ctx *x, const char *prefix, const char *delim, bool v1)
{
    struct s3_list_opts o = {.prefix = prefix, .delimiter = delim, .v1 = v1};
    return s3_list_all(x->c, &o, print_entry, NULL, &x->err);
}

struct many {
    struct s3_client *c;
    const char *prefix;
    long n;
    pthread_mutex_t mu;
    long next;
    struct err err;
};

static void *putmany_worker(void *arg)
{
    struct many *m = arg;
    for (;;) {
        char key[1024];
        struct err e = {0};
        pthread_mutex_lock(&m->mu);
        long i = m->next++;
        bool stop = i >= m->n || m->err.code != 0;
        pthread_mutex_unlock(&m->mu);
        if (stop)
            break;
        snprintf(key, sizeof key, "%s%05ld", m->prefix, i);
        if (s3_put_object(m->c, key, key, strlen(key), &e) != 0) {
            pthread_mutex_lock(&m->mu);
            if (m->err.code == 0)
                m->err = e;
            pthread_mutex_unlock(&m->mu);
            break;
        }
    }
    return NULL;
}

static int cmd_putmany(struct ctx *x, const char *prefix, long n)
{
    struct many m = {.c = x->c, .prefix = prefix, .n = n};
    pthread_t t[8];
    pthread_mutex_init(&m.mu, NULL);
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, putmany_worker, &m);
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    pthread_mutex_destroy(&m.mu);
    if (m.err.code)
        x->err = m.err;
    return m.err.code;
}

struct conc {
    struct s3_client *c;
    const char *key;
    const uint8_t *want;
    size_t want_len;
    int rc;
    struct err err;
};

static void *concurrent_worker(void *arg)
{
    struct conc *k = arg;
    struct buf b;
    for (int round = 0; round < 5 && k->rc == 0; round++) {
        buf_init(&b, (size_t)1 << 32);
        k->rc = s3_get_object(k->c, k->key, &b, &k->err);
        if (k->rc == 0 && (b.len != k->want_len || memcmp(b.data, k->want, b.len) != 0))
            k->rc = ERR(&k->err, EBADMSG, "concurrent GET returned different bytes");
        buf_free(&b);
    }
    return NULL;
}

static int cmd_concurrent(struct ctx *x, const char *key, const char *path, int n)
{
    uint8_t *data = NULL;
    size_t len = 0;
    struct conc k[32];
    pthread_t t[32];
    int rc = read_file(path, &data, &len, &x->err);
    if (n > 32)
        n = 32;
    for (int i = 0; rc == 0 && i < n; i++) {
        k[i] = (struct conc){.c = x->c, .key = key, .want = data, .want_len = len};
        pthread_create(&t[i], NULL, concurrent_worker, &k[i]);
    }
    for (int i = 0; rc == 0 && i < n; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; rc == 0 && i < n; i++) {
        if (k[i].rc) {
            x->err = k[i].err;
            rc = k[i].rc;
        }
    }
    free(data);
    return rc;
}

static int run(struct ctx *x, int argc, char **argv)
{
    const char *cmd = argv[0];
#define NEED(n)                                                                                    \
    if (argc < (n) + 1)                                                                            \
        return ERR(&x->err, EINVAL, "%s needs %d arguments", cmd, (n));
    if (strcmp(cmd, "headbucket") == 0)
        return s3_head_bucket(x->c, &x->err);
    if (strcmp(cmd, "mkbucket") == 0)
        return s3_create_bucket(x->c, &x->err);
    if (strcmp(cmd, "ensure") == 0)
        return s3_ensure_bucket(x->c, true, &x->err);
    if (strcmp(cmd, "put") == 0) {
        NEED(2);
        return cmd_put(x, argv[1], argv[2]);
    }
    if (strcmp(cmd, "putfd") == 0) {
        NEED(2);
        return cmd_putfd(x, argv[1], argv[2], argc > 3 ? strtoull(argv[3], NULL, 10) : 0);
    }
    if (strcmp(cmd, "get") == 0) {
        NEED(2);
        return cmd_get(x, argv[1], false, 0, 0, argv[2]);
    }
    if (strcmp(cmd, "getrange") == 0) {
        NEED(4);
        return cmd_get(x, argv[1], true, strtoull(argv[2], NULL, 10), strtoull(argv[3], NULL, 10),
                       argv[4]);
    }
    if (strcmp(cmd, "getfd") == 0) {
        NEED(2);
        return cmd_getfd(x, argv[1], argv[2]);
    }
    if (strcmp(cmd, "stream") == 0) {
        NEED(2);
        return cmd_stream(x, argv[1], argv[2]);
    }
    if (strcmp(cmd, "head") == 0) {
        NEED(1);
        return cmd_head(x, argv[1]);
    }
    if (strcmp(cmd, "rm") == 0) {
        NEED(1);
        return s3_delete_object(x->c, argv[1], &x->err);
    }
    if (strcmp(cmd, "rmmany") == 0) {
        NEED(1);
        return cmd_rmmany(x, argc - 1, argv + 1);
    }
    if (strcmp(cmd, "ls") == 0)
        return cmd_ls(x, argc - 1, argv + 1);
    if (strcmp(cmd, "lsall") == 0) { /* lsall PREFIX DELIM [v1] via s3_list_all */
        NEED(2);
        return cmd_lsall(x, *argv[1] ? argv[1] : NULL, *argv[2] ? argv[2] : NULL,
                         argc > 3 && strcmp(argv[3], "v1") == 0);
    }
    if (strcmp(cmd, "putmany") == 0) {
        NEED(2);
        return cmd_putmany(x, argv[1], strtol(argv[2], NULL, 10));
    }
    if (strcmp(cmd, "concurrent") == 0) {
        NEED(3);
        return cmd_concurrent(x, argv[1], argv[2], (int)strtol(argv[3], NULL, 10));
    }
    return ERR(&x->err, EINVAL, "unknown command %s", cmd);
#undef NEED
}

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = strdup(v);
}

/* Parses options into conf; returns the index of the command, or -1. */
static int parse_opts(int argc, char **argv, struct s3_conf *conf, struct ctx *x, int *level)
{
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--virtual") == 0) {
            conf->virtual_hosted = true;
            continue;
        }
        if (strcmp(o, "--stats") == 0) {
            x->stats = true;
            continue;
        }
        if (v == NULL)
            return -1;
        i++;
        if (strcmp(o, "--bucket") == 0)
            set_str(&conf->bucket, v);
        else if (strcmp(o, "--endpoint") == 0)
            set_str(&conf->endpoint, v);
        else if (strcmp(o, "--access-key") == 0)
            set_str(&conf->access_key_id, v);
        else if (strcmp(o, "--secret") == 0)
            set_str(&conf->secret_access_key, v);
        else if (strcmp(o, "--attempts") == 0)
            conf->max_attempts = (int)strtol(v, NULL, 10);
        else if (strcmp(o, "--backoff-ms") == 0)
            conf->backoff_base_ms = (int)strtol(v, NULL, 10);
        else if (strcmp(o, "--backoff-max-ms") == 0)
            conf->backoff_max_ms = (int)strtol(v, NULL, 10);
        else if (strcmp(o, "--part-size") == 0)
            conf->part_size = strtoull(v, NULL, 10);
        else if (strcmp(o, "--threshold") == 0)
            conf->multipart_threshold = strtoull(v, NULL, 10);
        else if (strcmp(o, "--parallel") == 0)
            conf->parallel = (int)strtol(v, NULL, 10);
        else if (strcmp(o, "--low-speed-s") == 0)
            conf->low_speed_timeout_s = strtol(v, NULL, 10);
        else if (strcmp(o, "--connect-timeout-ms") == 0)
            conf->connect_timeout_ms = strtol(v, NULL, 10);
        else if (strcmp(o, "--log-level") == 0)
            *level = log_level_parse(v);
        else
            return -1;
    }
    return i < argc ? i : -1;
}

int main(int argc, char **argv)
{
    struct s3_conf conf;
    struct ctx x = {0};
    int level = LOG_LEVEL_WARN;
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    s3_conf_init(&conf);
    int cmd = parse_opts(argc, argv, &conf, &x, &level);
    if (cmd < 0 || level < 0) {
        fprintf(stderr, "usage: s3check [options] COMMAND ARGS... (see tests/tools/s3check.c)\n");
        return 2;
    }
    log_init((enum log_level)level, false, "s3check");
    int rc = s3_conf_resolve(&conf, &x.err);
    if (rc == 0) {
        x.c = s3_client_new(&conf, &x.err);
        rc = x.c ? 0 : x.err.code;
    }
    if (rc == 0)
        rc = run(&x, argc - cmd, argv + cmd);
    if (x.c != NULL && x.stats) {
        struct s3_stats s;
        s3_client_stats(x.c, &s);
        fprintf(stderr,
                "stats requests=%llu put=%llu get=%llu list=%llu delete=%llu head=%llu "
                "retries=%llu failures=%llu up=%llu down=%llu connects=%llu\n",
                (unsigned long long)s.n_requests, (unsigned long long)s.n_put,
                (unsigned long long)s.n_get, (unsigned long long)s.n_list,
                (unsigned long long)s.n_delete, (unsigned long long)s.n_head,
                (unsigned long long)s.n_retries, (unsigned long long)s.n_failures,
                (unsigned long long)s.bytes_up, (unsigned long long)s.bytes_down,
                (unsigned long long)s.n_connects);
    }
    s3_client_free(x.c);
    s3_conf_free(&conf);
    curl_global_cleanup();
    return rc ? die(&x, rc) : 0;
}
