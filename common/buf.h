/* common/buf.h - a growable byte buffer with a hard ceiling.
 * Owns:    its data; buf_init() cannot fail, buf_free() releases (and may be called twice).
 * Rule:    an append past the cap or an allocation failure frees the buffer and returns
 *          EMSGSIZE / ENOMEM, so nobody goes on with a half-built value (curl's dynbuf rule).
 * Threads: not thread-safe. data is always NUL-terminated after a successful append. */
#ifndef BFS_COMMON_BUF_H
#define BFS_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;     /* allocated bytes */
    size_t max;     /* ceiling on len */
};

void buf_init(struct buf *b, size_t max);
int buf_append(struct buf *b, const void *p, size_t n);
int buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_reserve(struct buf *b, size_t extra);
void buf_reset(struct buf *b); /* len = 0, keeps memory */
void buf_free(struct buf *b);
/* Hands the data to the caller (who frees it with free()); b is empty afterwards. */
uint8_t *buf_steal(struct buf *b, size_t *len_out);

#endif
