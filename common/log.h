/* common/log.h - one-line log events: "<UTC time> <level> <component>: <event> key=value ...".
 * State:   the level and sink are process-wide (set once by main via log_init); this and
 *          the main.c files are the only places with mutable file-scope state.
 * Threads: safe; each line is written with one write(2) (or one syslog call).
 * Rule:    never log secrets (keys, signatures, Authorization, tokens) or page bytes.
 * Repeats: log_ratelimited() lets a caller collapse storms of the same event. */
#ifndef BFS_COMMON_LOG_H
#define BFS_COMMON_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG, LOG_LEVEL_TRACE };

/* name: "error|warn|info|debug|trace"; returns -1 when unknown. */
int log_level_parse(const char *name);
void log_init(enum log_level level, bool use_syslog, const char *ident);
void log_set_syslog(bool use_syslog);
bool log_enabled(enum log_level level);
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True when an event keyed by *last_ms should be logged now (at most once per interval_ms);
 * *suppressed counts the skipped ones so the next logged line can say how many. */
bool log_ratelimited(uint64_t *last_ms, unsigned *suppressed, unsigned interval_ms);

#define LOG_AT(lvl, ...)                                                                           \
    do {                                                                                           \
        if (log_enabled(lvl))                                                                      \
            log_write(lvl, __VA_ARGS__);                                                           \
    } while (0)
#define LOG_ERR(...) LOG_AT(LOG_LEVEL_ERROR, __VA_ARGS__)
#define LOG_WARN(...) LOG_AT(LOG_LEVEL_WARN, __VA_ARGS__)
#define LOG_INFO(...) LOG_AT(LOG_LEVEL_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) LOG_AT(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define LOG_TRACE(...) LOG_AT(LOG_LEVEL_TRACE, __VA_ARGS__)

#endif
