/* bench/sqlbench.c - SQLite workloads for `make bench`, run identically on a native directory
 * and on the mount. Each mode prints one JSON object on stdout.
 *
 *   sqlbench insert DB N SYNC             N single-row autocommit INSERTs (WAL, 4 KiB pages),
 *                                         SYNC = NORMAL|FULL -> {"tx_per_s":...}
 *   sqlbench load DB ROWS                 ROWS rows of 100-byte blobs for the read tests
 *   sqlbench reads DB Q ROWS              Q random point SELECTs by primary key -> {"q_per_s":...}
 *   sqlbench bulk DB MB                   MB of 1000-byte rows in one transaction, then a
 *                                         TRUNCATE checkpoint -> {"mb_per_s":...}
 *   sqlbench mixed DB SECS ROWS           one process updating random rows while this one reads:
 *                                         forks the writer -> {"q_per_s":..., "writer_tx_per_s":...}
 *   sqlbench lag DB RATE N STATUS         commits N single-row transactions at RATE tx/s; after
 *                                         each commit notes the WAL's frame count (SQLite's WAL
 *                                         hook: the -wal's size overstates it) and a poller
 *                                         thread reads STATUS (the mount's status JSON) every 2 ms
 *                                         to see when the frame is uploaded
 *                                         -> {"p50_ms","p99_ms","max_ms","puts_per_s"}
 *                                         (puts_per_s: S3 PUTs counted by the daemon from 2 s
 *                                         after the start to the last commit)
 * Only libsqlite3 and libc: the benchmark must not depend on the code it measures. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, sqlite3 *db)
{
    fprintf(stderr, "sqlbench: %s: %s\n", what, db ? sqlite3_errmsg(db) : "error");
    exit(1);
}

static void exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "sqlbench: %s: %s\n", sql, msg ? msg : "?");
        exit(1);
    }
}

static sqlite3 *open_db(const char *path, const char *sync)
{
    sqlite3 *db = NULL;
    char sql[128];
    if (sqlite3_open(path, &db) != SQLITE_OK)
        die("open", db);
    sqlite3_busy_timeout(db, 10000);
    exec(db, "PRAGMA page_size=4096");
    exec(db, "PRAGMA journal_mode=WAL");
    snprintf(sql, sizeof sql, "PRAGMA synchronous=%s", sync);
    exec(db, sql);
    return db;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void fill_blob(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)rng();
}

static int mode_insert(const char *path, long n, const char *sync)
{
    sqlite3 *db = open_db(path, sync);
    sqlite3_stmt *st;
    unsigned char blob[100];
    exec(db, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)");
    if (sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES (?)", -1, &st, NULL) != SQLITE_OK)
        die("prepare", db);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        fill_blob(blob, sizeof blob);
        sqlite3_bind_blob(st, 1, blob, sizeof blob, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            die("insert", db);
        sqlite3_reset(st);
    }
    double dt = now_s() - t0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    printf("{\"tx\":%ld,\"secs\":%.4f,\"tx_per_s\":%.1f}\n", n, dt, (double)n / dt);
    return 0;
}

static int mode_load(const char *path, long rows)
{
    sqlite3 *db = open_db(path, "NORMAL");
    sqlite3_stmt *st;
    unsigned char blob[100];
    exec(db, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)");
    exec(db, "BEGIN");
    if (sqlite3_prepare_v2(db, "INSERT INTO t(id, v) VALUES (?, ?)", -1, &st, NULL) != SQLITE_OK)
        die("prepare", db);
    for (long i = 1; i <= rows; i++) {
        fill_blob(blob, sizeof blob);
        sqlite3_bind_int64(st, 1, i);
        sqlite3_bind_blob(st, 2, blob, sizeof blob, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            die("load", db);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    exec(db, "COMMIT");
    exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    sqlite3_close(db);
    printf("{\"rows\":%ld}\n", rows);
    return 0;
}

static double run_reads(const char *path, long q, long rows)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        die("open", db);
    sqlite3_busy_timeout(db, 10000);
    if (sqlite3_prepare_v2(db, "SELECT length(v) FROM t WHERE id=?", -1, &st, NULL) != SQLITE_OK)
        die("prepare", db);
    double t0 = now_s();
    for (long i = 0; i < q; i++) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)(rng() % (uint64_t)rows) + 1);
        if (sqlite3_step(st) != SQLITE_ROW)
            die("select", db);
        sqlite3_reset(st);
    }
    double dt = now_s() - t0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return (double)q / dt;
}

static int mode_reads(const char *path, long q, long rows)
{
    printf("{\"q\":%ld,\"q_per_s\":%.1f}\n", q, run_reads(path, q, rows));
    return 0;
}

static int mode_mixed(const char *path, double secs, long rows)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        sqlite3 *db = open_db(path, "NORMAL");
        sqlite3_stmt *st;
        unsigned char blob[100];
        if (sqlite3_prepare_v2(db, "UPDATE t SET v=? WHERE id=?", -1, &st, NULL) != SQLITE_OK)
            die("prepare", db);
        long n = 0;
        double t0 = now_s();
        while (now_s() - t0 < secs) {
            fill_blob(blob, sizeof blob);
            sqlite3_bind_blob(st, 1, blob, sizeof blob, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)(rng() % (uint64_t)rows) + 1);
            if (sqlite3_step(st) != SQLITE_DONE)
                die("update", db);
            sqlite3_reset(st);
            n++;
        }
        double rate = (double)n / (now_s() - t0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        if (write(pfd[1], &rate, sizeof rate) != sizeof rate)
            _exit(1);
        _exit(0);
    }
    close(pfd[1]);
    long q = 0;
    double t0 = now_s(), total = 0;
    while (now_s() - t0 < secs) {
        double r = run_reads(path, 20000, rows);
        q += 20000;
        total += 20000 / r;
    }
    double wrate = 0;
    if (read(pfd[0], &wrate, sizeof wrate) != sizeof wrate)
        wrate = -1;
    int status;
    waitpid(pid, &status, 0);
    printf("{\"q_per_s\":%.1f,\"writer_tx_per_s\":%.1f}\n", (double)q / total, wrate);
    return 0;
}

static int mode_bulk(const char *path, long mb)
{
    sqlite3 *db = open_db(path, "NORMAL");
    sqlite3_stmt *st;
    unsigned char blob[1000];
    long rows = mb * 1024 * 1024 / 1000;
    exec(db, "PRAGMA cache_size=-65536");
    exec(db, "CREATE TABLE IF NOT EXISTS b(id INTEGER PRIMARY KEY, v BLOB)");
    double t0 = now_s();
    exec(db, "BEGIN");
    if (sqlite3_prepare_v2(db, "INSERT INTO b(v) VALUES (?)", -1, &st, NULL) != SQLITE_OK)
        die("prepare", db);
    for (long i = 0; i < rows; i++) {
        fill_blob(blob, sizeof blob);
        sqlite3_bind_blob(st, 1, blob, sizeof blob, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            die("bulk", db);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    exec(db, "COMMIT");
    exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    sqlite3_close(db);
    double dt = now_s() - t0;
    printf("{\"mb\":%ld,\"secs\":%.3f,\"mb_per_s\":%.2f}\n", mb, dt, (double)mb / dt);
    return 0;
}

/* ---- lag ---- */
struct lag_poll {
    const char *status_path;
    atomic_bool stop;
    double *seen_at; /* seen_at[frame] = first time the status showed it uploaded */
    long max_frame;
};

/* The first number after "KEY": in the status JSON at path; -1 if absent. */
static long status_number(const char *path, const char *key)
{
    char buf[1 << 16];
    char pat[64];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(buf, pat);
    if (p == NULL)
        return -1;
    p = strchr(p, ':');
    return p ? strtol(p + 1, NULL, 10) : -1;
}

static long status_uploaded_frame(const char *path)
{
    return status_number(path, "last_uploaded_frame");
}

static void *lag_poller(void *arg)
{
    struct lag_poll *lp = arg;
    long upto = 0;
    while (!atomic_load(&lp->stop)) {
        long f = status_uploaded_frame(lp->status_path);
        double t = now_s();
        if (f > lp->max_frame)
            f = lp->max_frame;
        for (; upto < f; upto++)
            lp->seen_at[upto + 1] = t;
        usleep(2000);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* SQLite's count of frames in the WAL after each commit (the -wal's size does not say: the
 * daemon keeps a growing -wal extended past its frames). */
static int lag_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    *(long *)arg = frames;
    return SQLITE_OK;
}

static int mode_lag(const char *path, double rate, long n, const char *status_path)
{
    sqlite3 *db = open_db(path, "NORMAL");
    sqlite3_stmt *st;
    unsigned char blob[100];
    exec(db, "PRAGMA wal_autocheckpoint=0");
    long wal_frames = 0;
    sqlite3_wal_hook(db, lag_wal_hook, &wal_frames); /* replaces the (off) auto-checkpoint */
    exec(db, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)");
    if (sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES (?)", -1, &st, NULL) != SQLITE_OK)
        die("prepare", db);
    long max_frame = 64 + n * 8;
    double *commit_at = calloc((size_t)n, sizeof *commit_at);
    long *frame_of = calloc((size_t)n, sizeof *frame_of);
    struct lag_poll lp = {.status_path = status_path, .max_frame = max_frame};
    lp.seen_at = calloc((size_t)max_frame + 1, sizeof *lp.seen_at);
    if (!commit_at || !frame_of || !lp.seen_at)
        return 1;
    pthread_t th;
    pthread_create(&th, NULL, lag_poller, &lp);
    double t0 = now_s();
    /* S3 PUTs at steady load: counted from 2 s after the start to the last commit. */
    double puts_t0 = 0, puts_t1 = 0;
    long puts0 = -1, puts1 = -1;
    for (long i = 0; i < n; i++) {
        if (puts0 < 0 && now_s() - t0 >= 2.0) {
            puts0 = status_number(status_path, "puts");
            puts_t0 = now_s();
        }
        double due = t0 + (double)i / rate;
        double wait = due - now_s();
        if (wait > 0)
            usleep((useconds_t)(wait * 1e6));
        fill_blob(blob, sizeof blob);
        sqlite3_bind_blob(st, 1, blob, sizeof blob, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            die("insert", db);
        sqlite3_reset(st);
        commit_at[i] = now_s();
        frame_of[i] = wal_frames;
        if (frame_of[i] > max_frame)
            frame_of[i] = max_frame;
    }
    puts1 = status_number(status_path, "puts");
    puts_t1 = now_s();
    double puts_per_s = puts0 >= 0 && puts1 >= puts0 && puts_t1 > puts_t0
                            ? (double)(puts1 - puts0) / (puts_t1 - puts_t0)
                            : -1;
    double deadline = now_s() + 30;
    while (now_s() < deadline && lp.seen_at[frame_of[n - 1]] == 0)
        usleep(10000);
    atomic_store(&lp.stop, true);
    pthread_join(th, NULL);
    double *lags = calloc((size_t)n, sizeof *lags);
    long m = 0, missing = 0;
    for (long i = 0; i < n; i++) {
        double s = lp.seen_at[frame_of[i]];
        if (s == 0) {
            missing++;
            continue;
        }
        lags[m++] = s > commit_at[i] ? (s - commit_at[i]) * 1000 : 0;
    }
    qsort(lags, (size_t)m, sizeof *lags, cmp_double);
    double achieved = (double)n / (commit_at[n - 1] - t0);
    if (m == 0) {
        printf("{\"rate\":%.1f,\"achieved\":%.1f,\"missing\":%ld}\n", rate, achieved, missing);
        return 1;
    }
    printf("{\"rate\":%.1f,\"achieved\":%.1f,\"p50_ms\":%.1f,\"p99_ms\":%.1f,\"max_ms\":%.1f,"
           "\"missing\":%ld,\"puts_per_s\":%.3f}\n",
           rate, achieved, lags[m / 2], lags[(m * 99) / 100 < m ? (m * 99) / 100 : m - 1],
           lags[m - 1], missing, puts_per_s);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return missing ? 1 : 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 5 && strcmp(argv[1], "insert") == 0)
        return mode_insert(argv[2], atol(argv[3]), argv[4]);
    if (argc >= 4 && strcmp(argv[1], "load") == 0)
        return mode_load(argv[2], atol(argv[3]));
    if (argc >= 5 && strcmp(argv[1], "reads") == 0)
        return mode_reads(argv[2], atol(argv[3]), atol(argv[4]));
    if (argc >= 4 && strcmp(argv[1], "bulk") == 0)
        return mode_bulk(argv[2], atol(argv[3]));
    if (argc >= 5 && strcmp(argv[1], "mixed") == 0)
        return mode_mixed(argv[2], atof(argv[3]), atol(argv[4]));
    if (argc >= 6 && strcmp(argv[1], "lag") == 0)
        return mode_lag(argv[2], atof(argv[3]), atol(argv[4]), argv[5]);
    fprintf(stderr, "usage: sqlbench insert|load|reads|bulk|mixed|lag ... (see bench/sqlbench.c)\n");
    return 2;
}
