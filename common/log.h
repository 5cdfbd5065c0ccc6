/* common/log.h - one-line log events: "<UTC time> <level> <component>: <event> key=value ...".
 * State:   the level and sink are process-wide (set once by main via log_init); this and
 *          the main.c files are the only places with mutable file-scope state.
 * Threads: safe; each line is written with one write(2) (or one syslog call).
 * Rule:    never log secrets (keys, signatures, Authorization, tokens) or page bytes.
 * Repeats: LOG_*_RL(ms, ...) print a call site at most once per ms milliseconds; the next line
 *          that gets through ends with "suppressed=N" (the repeats skipped meanwhile).
 *          log_ratelimited() does the same for a caller that keeps its own state. */
#ifndef BFS_COMMON_LOG_H
#define BFS_COMMON_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level {
    LOG_LEVEL_ERROR,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_TRACE
};

/* name: "error|warn|info|debug|trace"; returns -1 when unknown. */
int log_level_parse(const char *name);
void log_init(enum log_level level, bool use_syslog, const char *ident);
void log_set_syslog(bool use_syslog);
bool log_enabled(enum log_level level);
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* log_write for LOG_*_RL: one line per call site (file, line) per interval_ms. Sites are kept
 * in a small fixed table; when it is full, lines are not limited (never lost). */
void log_write_rl(enum log_level level, const char *file, int line, unsigned interval_ms,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

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

#define LOG_AT_RL(lvl, ms, ...)                                                                    \
    do {                                                                                           \
        if (log_enabled(lvl))                                                                      \
            log_write_rl(lvl, __FILE__, __LINE__, (ms), __VA_ARGS__);                              \
    } while (0)
#define LOG_ERR_RL(ms, ...) LOG_AT_RL(LOG_LEVEL_ERROR, ms, __VA_ARGS__)
#define LOG_WARN_RL(ms, ...) LOG_AT_RL(LOG_LEVEL_WARN, ms, __VA_ARGS__)
#define LOG_INFO_RL(ms, ...) LOG_AT_RL(LOG_LEVEL_INFO, ms, __VA_ARGS__)

#endif
