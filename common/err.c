#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void strip_newlines(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

int err_set_at(struct err *e, const char *file, int line, int code, const char *fmt, ...)
{
    va_list ap;

    if (e == NULL || e->code != 0)
        return code;
    e->code = code;
    snprintf(e->where, sizeof e->where, "%s:%d", file, line);
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    strip_newlines(e->msg);
    return code;
}

void err_prefix(struct err *e, const char *fmt, ...)
{
    char pre[256];
    char old[sizeof e->msg];
    va_list ap;

    if (e == NULL || e->code == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    size_t n = strnlen(pre, sizeof e->msg - 3);
    memcpy(e->msg, pre, n);
    e->msg[n++] = ':';
    e->msg[n++] = ' ';
    size_t rest = strnlen(old, sizeof old);
    if (rest > sizeof e->msg - 1 - n)
        rest = sizeof e->msg - 1 - n;
    memcpy(e->msg + n, old, rest);
    e->msg[n + rest] = '\0';
    strip_newlines(e->msg);
}

void err_clear(struct err *e)
{
    if (e != NULL)
        memset(e, 0, sizeof *e);
}

const char *errno_name(int code)
{
    static const struct {
        int code;
        const char *name;
    } names[] = {
        {EPERM, "EPERM"},       {ENOENT, "ENOENT"},         {EINTR, "EINTR"},
        {EIO, "EIO"},           {E2BIG, "E2BIG"},           {EBADF, "EBADF"},
        {EAGAIN, "EAGAIN"},     {ENOMEM, "ENOMEM"},         {EACCES, "EACCES"},
        {EEXIST, "EEXIST"},     {EXDEV, "EXDEV"},           {ENOTDIR, "ENOTDIR"},
        {EISDIR, "EISDIR"},     {EINVAL, "EINVAL"},         {EMFILE, "EMFILE"},
        {EFBIG, "EFBIG"},       {ENOSPC, "ENOSPC"},         {EROFS, "EROFS"},
        {EPIPE, "EPIPE"},       {ERANGE, "ERANGE"},         {ENAMETOOLONG, "ENAMETOOLONG"},
        {ENOSYS, "ENOSYS"},     {ENOTEMPTY, "ENOTEMPTY"},   {ELOOP, "ELOOP"},
        {EBADMSG, "EBADMSG"},   {EOVERFLOW, "EOVERFLOW"},   {EMSGSIZE, "EMSGSIZE"},
        {ENOTSUP, "ENOTSUP"},   {ECONNRESET, "ECONNRESET"}, {ETIMEDOUT, "ETIMEDOUT"},
        {ECONNREFUSED, "ECONNREFUSED"}, {EHOSTUNREACH, "EHOSTUNREACH"},
        {ECANCELED, "ECANCELED"}, {EDQUOT, "EDQUOT"}, {ESTALE, "ESTALE"},
    };
    static _Thread_local char unknown[16];

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == code)
            return names[i].name;
    snprintf(unknown, sizeof unknown, "E%d", code);
    return unknown;
}

const char *errno_text(int code, char *buf, size_t len)
{
    /* GNU strerror_r may return a static string instead of filling buf. */
    const char *s = strerror_r(code, buf, len);
    if (s != buf)
        snprintf(buf, len, "%s", s);
    return buf;
}
