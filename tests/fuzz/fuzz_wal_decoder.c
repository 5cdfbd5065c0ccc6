/* tests/fuzz/fuzz_wal_decoder.c - the incremental WAL decoder (wal/decoder.h) on arbitrary
 * bytes. Input: byte 0 = mode, the rest = the -wal file's final content F.
 *   mode & 1:  F is on "disk" whole and wal_decoder_scan() reads it (startup rescan);
 *   otherwise: F is written in chunks of 1 + (mode >> 1) * 41 bytes, in order, each reported
 *              with wal_decoder_wrote (the decoder reads back from the growing file); then the
 *              header is rewritten in place (restart check) and the file truncated to half
 *              (truncation rules), then wal_decoder_recheck().
 * Every commit reported must lie inside the file and be frame-aligned. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "wal/decoder.h"

struct memfile {
    const uint8_t *data; /* the final content */
    size_t size;         /* bytes "written" so far (the file's length) */
};

static int mem_read(void *arg, uint64_t off, void *buf, size_t len, size_t *got_out,
                    struct err *err)
{
    struct memfile *f = arg;
    (void)err;
    *got_out = 0;
    if (off >= f->size)
        return 0;
    size_t n = f->size - (size_t)off < len ? f->size - (size_t)off : len;
    memcpy(buf, f->data + off, n);
    *got_out = n;
    return 0;
}

static int on_commit(void *arg, const struct wal_commit *c, struct err *err)
{
    struct memfile *f = arg;
    (void)err;
    if (c->first == 0 || c->last < c->first || !wal_page_size_valid(c->page_size) ||
        c->first_off != wal_frame_offset(c->page_size, c->first) ||
        c->n_bytes != (uint64_t)(c->last - c->first + 1) * wal_frame_size(c->page_size) ||
        c->first_off + c->n_bytes > f->size)
        abort(); /* a commit outside the file or misaligned: decoder bug */
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    struct memfile f = {.data = data + 1, .size = 0};
    size_t total = size - 1;
    struct wal_decoder_ops ops = {.read = mem_read, .on_commit = on_commit};
    struct err e = {0};
    struct wal_decoder *d = wal_decoder_new(&ops, &f, &e);
    if (!d)
        return 0;
    if (mode & 1) {
        f.size = total;
        wal_decoder_scan(d, total, &e);
    } else {
        size_t chunk = 1 + (size_t)(mode >> 1) * 41;
        for (size_t off = 0; off < total; off += chunk) {
            size_t n = total - off < chunk ? total - off : chunk;
            f.size = off + n;
            err_clear(&e);
            wal_decoder_wrote(d, off, f.data + off, n, &e);
        }
        if (total >= WAL_HEADER_BYTES) {
            err_clear(&e);
            wal_decoder_wrote(d, 0, f.data, WAL_HEADER_BYTES, &e);
        }
        f.size = total / 2;
        err_clear(&e);
        wal_decoder_truncated(d, f.size, &e);
        err_clear(&e);
        wal_decoder_recheck(d, &e);
    }
    (void)wal_decoder_committed(d);
    (void)wal_decoder_committed_end(d);
    wal_decoder_free(d);
    return 0;
}
