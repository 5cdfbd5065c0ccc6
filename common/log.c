/* common/log.c - see log.h. The only file besides the main.c files with mutable file-scope
 * state: the level, the sink (stderr or syslog), the syslog ident and the rate-limit table. */
#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"

#define LOG_LINE_MAX 2048
#define LOG_RL_SITES 64 /* distinct rate-limited call sites tracked */

static atomic_int log_level = LOG_LEVEL_INFO;
static atomic_bool log_syslog = false;
static const char *log_ident = "bottomlessfs"; /* set before any thread starts */

struct rl_site {
    const char *file; /* NULL: free slot */
    int line;
    uint64_t last_ms;
    unsigned suppressed;
};
static pthread_mutex_t rl_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rl_site rl_sites[LOG_RL_SITES]; /* guarded by rl_mu */

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

int log_level_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof level_names / sizeof level_names[0]); i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void log_init(enum log_level level, bool use_syslog, const char *ident)
{
    atomic_store(&log_level, (int)level);
    if (ident != NULL)
        log_ident = ident;
    log_set_syslog(use_syslog);
}

void log_set_syslog(bool use_syslog)
{
    if (use_syslog && !atomic_load(&log_syslog))
        openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
    atomic_store(&log_syslog, use_syslog);
}

bool log_enabled(enum log_level level)
{
    return (int)level <= atomic_load(&log_level);
}

/* Formats one line (prefix, message, optional suffix) and writes it with one call. */
static void log_vwrite(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
    char line[LOG_LINE_MAX];
    size_t n = 0;
    bool to_syslog = atomic_load(&log_syslog);

    if (!to_syslog) {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000,
                              level_names[level]);
    }
    int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
    if (m < 0)
        return;
    n += (size_t)m;
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    if (suffix != NULL && suffix[0] != '\0') {
        int k = snprintf(line + n, sizeof line - n - 1, "%s", suffix);
        if (k > 0)
            n += (size_t)k;
        if (n > sizeof line - 2)
            n = sizeof line - 2;
    }
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    if (to_syslog) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG};
        line[n] = '\0';
        syslog(prio[level], "%s", line);
        return;
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(level, NULL, fmt, ap);
    va_end(ap);
}

void log_write_rl(enum log_level level, const char *file, int line, unsigned interval_ms,
                  const char *fmt, ...)
{
    char suffix[40] = "";
    bool print = true;
    va_list ap;

    pthread_mutex_lock(&rl_mu);
    struct rl_site *s = NULL;
    for (size_t i = 0; i < LOG_RL_SITES && s == NULL; i++) {
        if (rl_sites[i].file == NULL) {
            rl_sites[i].file = file;
            rl_sites[i].line = line;
            s = &rl_sites[i];
        } else if (rl_sites[i].line == line && strcmp(rl_sites[i].file, file) == 0) {
            s = &rl_sites[i];
        }
    }
    if (s != NULL) {
        unsigned skipped = s->suppressed;
        print = log_ratelimited(&s->last_ms, &s->suppressed, interval_ms);
        if (print) {
            s->suppressed = 0;
            if (skipped > 0)
                snprintf(suffix, sizeof suffix, " suppressed=%u", skipped);
        }
    }
    pthread_mutex_unlock(&rl_mu);
    if (!print)
        return;
    va_start(ap, fmt);
    log_vwrite(level, suffix, fmt, ap);
    va_end(ap);
}

bool log_ratelimited(uint64_t *last_ms, unsigned *suppressed, unsigned interval_ms)
{
    uint64_t now = (uint64_t)clock_mono_ms();

    if (*last_ms != 0 && now - *last_ms < interval_ms) {
        (*suppressed)++;
        return false;
    }
    *last_ms = now;
    return true;
}
