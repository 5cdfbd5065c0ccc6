/* common/err.h - errors as values: a positive errno plus a one-line message.
 * Owns:    nothing; struct err is a plain value the caller provides (may be NULL).
 * Threads: a struct err belongs to one thread at a time.
 * Rule:    the first failure wins (later ERR() calls keep the original message);
 *          layers add context in front with err_prefix(). Messages never hold secrets.
 * errno conventions (docs/c-style): ENOENT missing, EBADMSG corrupt input, EAGAIN transient
 * after retries, EACCES credentials refused, EEXIST precondition/lease, ENOSPC disk full,
 * EMSGSIZE over a cap, EINVAL bad configuration, ENOMEM, ECANCELED shutdown, EIO otherwise. */
#ifndef BFS_COMMON_ERR_H
#define BFS_COMMON_ERR_H

#include <stddef.h>

struct err {
    int code;        /* positive errno; 0 while nothing has failed */
    int http_status; /* set by s3/ when an HTTP response caused it */
    char where[48];  /* "wal/decoder.c:212" of the first failure */
    char msg[512];   /* one line, no newline, no secrets */
};

/* Records the failure unless one is already recorded; returns code (so `return ERR(...)`). */
int err_set_at(struct err *e, const char *file, int line, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
#define ERR(e, code, ...) err_set_at((e), __FILE__, __LINE__, (code), __VA_ARGS__)

/* Puts "prefix: " in front of the recorded message (no-op when nothing failed). */
void err_prefix(struct err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_clear(struct err *e);

/* "ENOENT", "EBADMSG", ...; "E<number>" for unknown values. Never NULL. */
const char *errno_name(int code);
/* Thread-safe strerror into buf; returns buf. */
const char *errno_text(int code, char *buf, size_t len);

#endif
