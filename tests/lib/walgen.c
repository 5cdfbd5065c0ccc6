/* tests/lib/walgen.c - in-memory WAL files and write logs for tests (see walgen.h). */
#include "tests/lib/walgen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wal/walfmt.h"

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fputs("walgen: out of memory\n", stderr);
        abort();
    }
    return q;
}

void memwal_write(struct memwal *m, uint64_t off, const void *p, size_t len)
{
    size_t end = (size_t)off + len;

    if (end > m->cap) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap < end)
            cap *= 2;
        m->data = xrealloc(m->data, cap);
        m->cap = cap;
    }
    if (off > m->len)
        memset(m->data + m->len, 0, (size_t)off - m->len);
    memcpy(m->data + off, p, len);
    if (end > m->len)
        m->len = end;
}

void memwal_truncate(struct memwal *m, uint64_t size)
{
    if (size > m->len) {
        uint8_t zero = 0;
        memwal_write(m, size - 1, &zero, 1);
        return;
    }
    m->len = (size_t)size;
}

int memwal_read(void *arg, uint64_t off, void *buf, size_t len, size_t *got_out, struct err *err)
{
    struct memwal *m = arg;
    size_t n = 0;

    (void)err;
    if (off < m->len)
        n = m->len - (size_t)off < len ? m->len - (size_t)off : len;
    if (n)
        memcpy(buf, m->data + off, n);
    *got_out = n;
    return 0;
}

void memwal_free(struct memwal *m)
{
    free(m->data);
    memset(m, 0, sizeof(*m));
}

static struct walop *walops_push(struct walops *o)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 64;
        o->v = xrealloc(o->v, o->cap * sizeof(*o->v));
    }
    memset(&o->v[o->n], 0, sizeof(o->v[0]));
    return &o->v[o->n++];
}

void walops_add_write(struct walops *o, uint64_t off, const void *p, size_t len)
{
    struct walop *op = walops_push(o);
    op->kind = WALOP_WRITE;
    op->off = off;
    op->len = len;
    op->data = xrealloc(NULL, len);
    memcpy(op->data, p, len);
}

void walops_add_truncate(struct walops *o, uint64_t size)
{
    struct walop *op = walops_push(o);
    op->kind = WALOP_TRUNCATE;
    op->off = size;
}

void walops_free(struct walops *o)
{
    for (size_t i = 0; i < o->n; i++)
        free(o->v[i].data);
    free(o->v);
    memset(o, 0, sizeof(*o));
}

struct walgen {
    struct wal_header hdr;
    uint8_t hdr_bytes[WAL_HEADER_BYTES];
    uint32_t nframes;
    uint32_t s[2]; /* running checksum after frame nframes */
    struct memwal img;
    struct walops ops;
    uint8_t *frame; /* one frame of scratch */
};

static void gen_write(struct walgen *g, uint64_t off, const void *p, size_t len)
{
    memwal_write(&g->img, off, p, len);
    walops_add_write(&g->ops, off, p, len);
}

struct walgen *walgen_new(uint32_t page_size, bool big_endian, uint32_t salt1, uint32_t salt2)
{
    struct walgen *g = xrealloc(NULL, sizeof(*g));

    memset(g, 0, sizeof(*g));
    g->hdr.page_size = page_size;
    g->hdr.big_endian = big_endian;
    g->hdr.salt1 = salt1;
    g->hdr.salt2 = salt2;
    g->frame = xrealloc(NULL, WAL_FRAME_HEADER_BYTES + (size_t)page_size);
    return g;
}

void walgen_free(struct walgen *g)
{
    if (!g)
        return;
    memwal_free(&g->img);
    walops_free(&g->ops);
    free(g->frame);
    free(g);
}

void walgen_header(struct walgen *g)
{
    struct err e = {0};

    wal_header_encode(&g->hdr, g->hdr_bytes);
    if (wal_header_parse(g->hdr_bytes, &g->hdr, &e) != 0) {
        fprintf(stderr, "walgen: %s\n", e.msg);
        abort();
    }
    g->nframes = 0;
    g->s[0] = g->hdr.cksum1;
    g->s[1] = g->hdr.cksum2;
    gen_write(g, 0, g->hdr_bytes, WAL_HEADER_BYTES);
}

void walgen_restart(struct walgen *g, uint32_t salt1, uint32_t salt2)
{
    g->hdr.ckpt_seq++;
    g->hdr.salt1 = salt1;
    g->hdr.salt2 = salt2;
    walgen_header(g);
}

void walgen_fill_page(uint8_t *page, uint32_t page_size, uint32_t pgno, uint32_t fill)
{
    uint32_t x = pgno * 2654435761u ^ fill * 40503u ^ 0x9e3779b9u;

    for (uint32_t i = 0; i < page_size; i += 4) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        be32_store(page + i, x);
    }
}

static void encode_frame_header(struct walgen *g, uint8_t *f, bool salted)
{
    if (salted) {
        be32_store(f + 8, g->hdr.salt1);
        be32_store(f + 12, g->hdr.salt2);
        wal_frame_checksum_ok(g->hdr.big_endian, f, f + WAL_FRAME_HEADER_BYTES, g->hdr.page_size,
                              g->s);
        be32_store(f + 16, g->s[0]);
        be32_store(f + 20, g->s[1]);
    } else {
        memset(f + 8, 0, 16);
    }
}

static uint32_t append_frame(struct walgen *g, uint32_t pgno, uint32_t db_pages, uint32_t fill,
                             bool salted)
{
    uint32_t n = ++g->nframes;
    uint64_t off = wal_frame_offset(g->hdr.page_size, n);
    uint8_t *f = g->frame;

    be32_store(f, pgno);
    be32_store(f + 4, db_pages);
    walgen_fill_page(f + WAL_FRAME_HEADER_BYTES, g->hdr.page_size, pgno, fill);
    encode_frame_header(g, f, salted);
    gen_write(g, off, f, WAL_FRAME_HEADER_BYTES);
    gen_write(g, off + WAL_FRAME_HEADER_BYTES, f + WAL_FRAME_HEADER_BYTES, g->hdr.page_size);
    return n;
}

uint32_t walgen_frame(struct walgen *g, uint32_t pgno, uint32_t db_pages, uint32_t fill)
{
    return append_frame(g, pgno, db_pages, fill, true);
}

uint32_t walgen_frame_unsalted(struct walgen *g, uint32_t pgno, uint32_t db_pages, uint32_t fill)
{
    return append_frame(g, pgno, db_pages, fill, false);
}

uint32_t walgen_commit(struct walgen *g, uint32_t pgno, uint32_t db_pages)
{
    return walgen_frame(g, pgno, db_pages, 0);
}

void walgen_rewrite_page(struct walgen *g, uint32_t n, uint32_t fill)
{
    uint64_t off = wal_frame_offset(g->hdr.page_size, n);
    uint8_t *page = g->frame + WAL_FRAME_HEADER_BYTES;

    walgen_fill_page(page, g->hdr.page_size, be32_load(g->img.data + off), fill);
    gen_write(g, off + WAL_FRAME_HEADER_BYTES, page, g->hdr.page_size);
}

static void chain_from(struct walgen *g, uint32_t n)
{
    if (n == 0) {
        g->s[0] = g->hdr.cksum1;
        g->s[1] = g->hdr.cksum2;
    } else {
        uint64_t off = wal_frame_offset(g->hdr.page_size, n);
        g->s[0] = be32_load(g->img.data + off + 16);
        g->s[1] = be32_load(g->img.data + off + 20);
    }
}

void walgen_rewrite_checksums(struct walgen *g, uint32_t from, uint32_t to)
{
    uint64_t fsize = wal_frame_size(g->hdr.page_size);

    chain_from(g, from - 1);
    for (uint32_t n = from; n <= to; n++) {
        uint64_t off = wal_frame_offset(g->hdr.page_size, n);
        memcpy(g->frame, g->img.data + off, (size_t)fsize);
        encode_frame_header(g, g->frame, true);
        gen_write(g, off, g->frame, WAL_FRAME_HEADER_BYTES);
    }
    if (to > g->nframes)
        g->nframes = to;
    chain_from(g, g->nframes);
}

void walgen_rollback_to(struct walgen *g, uint32_t n)
{
    g->nframes = n;
    chain_from(g, n);
}

void walgen_set_chain(struct walgen *g, uint32_t s0, uint32_t s1)
{
    g->s[0] = s0;
    g->s[1] = s1;
}

void walgen_truncate(struct walgen *g, uint64_t size)
{
    memwal_truncate(&g->img, size);
    walops_add_truncate(&g->ops, size);
}

void walgen_flip_bit(struct walgen *g, uint64_t off, unsigned bit)
{
    uint8_t mask = (uint8_t)(1u << (bit & 7));

    g->img.data[off] ^= mask;
    for (size_t i = g->ops.n; i-- > 0;) {
        struct walop *op = &g->ops.v[i];
        if (op->kind == WALOP_WRITE && off >= op->off && off < op->off + op->len) {
            op->data[off - op->off] ^= mask;
            break;
        }
    }
}

uint32_t walgen_page_size(const struct walgen *g)
{
    return g->hdr.page_size;
}

uint32_t walgen_nframes(const struct walgen *g)
{
    return g->nframes;
}

const struct walops *walgen_ops(const struct walgen *g)
{
    return &g->ops;
}

struct memwal *walgen_image(struct walgen *g)
{
    return &g->img;
}
