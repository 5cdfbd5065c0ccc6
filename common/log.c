#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = LOG_LEVEL_INFO;
static atomic_bool log_syslog = false;

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
    if (use_syslog)
        openlog(ident, LOG_PID, LOG_DAEMON);
    atomic_store(&log_syslog, use_syslog);
}

void log_set_syslog(bool use_syslog)
{
    atomic_store(&log_syslog, use_syslog);
}

bool log_enabled(enum log_level level)
{
    return (int)level <= atomic_load(&log_level);
}

void log_write(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    size_t n = 0;
    va_list ap;

    if (!atomic_load(&log_syslog)) {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %-5s ", ts.tv_nsec / 1000000,
                              level_names[level]);
    }
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    n += (size_t)m;
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\n')
            line[i] = ' ';
    if (atomic_load(&log_syslog)) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG};
        line[n] = '\0';
        syslog(prio[level], "%s", line);
        return;
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

bool log_ratelimited(uint64_t *last_ms, unsigned *suppressed, unsigned interval_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (*last_ms != 0 && now - *last_ms < interval_ms) {
        (*suppressed)++;
        return false;
    }
    *last_ms = now;
    return true;
}
