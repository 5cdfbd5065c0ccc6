/* wal/compress.c - streaming zstd / gzip / raw codecs (contract in compress.h).
 * zstd: ZSTD_CStream / ZSTD_DStream; the decoder runs across frame boundaries, so several
 * concatenated frames decode as one stream; the stream is complete only when the last
 * ZSTD_decompressStream returned 0 (frame fully decoded and flushed).
 * gzip: zlib deflate/inflate with windowBits 15+16 (gzip wrapper); after Z_STREAM_END the
 * inflater is reset so further members (concatenated gzip) are decoded too. */
#include "wal/compress.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "common/fileio.h"

int compression_parse(const char *name, enum compression *out)
{
    if (!name || !strcmp(name, "") || !strcmp(name, "raw") || !strcmp(name, "none"))
        *out = COMP_RAW;
    else if (!strcmp(name, "gz") || !strcmp(name, "gzip"))
        *out = COMP_GZIP;
    else if (!strcmp(name, "zstd"))
        *out = COMP_ZSTD;
    else
        return EINVAL;
    return 0;
}

const char *compression_ext(enum compression c)
{
    switch (c) {
    case COMP_RAW:
        return "raw";
    case COMP_GZIP:
        return "gz";
    case COMP_ZSTD:
        return "zstd";
    case COMP_AUTO:
        return "auto";
    }
    return "?";
}

enum compression compression_sniff(const uint8_t *p, size_t len)
{
    if (len >= 2 && p[0] == 0x1f && p[1] == 0x8b)
        return COMP_GZIP;
    if (len >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd)
        return COMP_ZSTD;
    return COMP_RAW;
}

/* ------------------------------------------------------------- both sides */

/* The head of both coders, so that one constructor sets up either. */
struct coder {
    enum compression c;
    compress_sink_fn *sink;
    void *arg;
};

/* A zeroed coder of size bytes (a struct whose first member is a struct coder) writing to
 * sink; NULL with *err set. what names the direction in the message. */
static void *coder_new(size_t size, enum compression c, compress_sink_fn *sink, void *arg,
                       const char *what, struct err *err)
{
    struct coder *co = calloc(1, size);

    if (!co) {
        ERR(err, ENOMEM, "%s: out of memory", what);
        return NULL;
    }
    co->c = c;
    co->sink = sink;
    co->arg = arg;
    return co;
}

/* ---------------------------------------------------------------- encoder */

struct compressor {
    struct coder co; /* first, for coder_new() */
    ZSTD_CStream *zs;
    z_stream gz;
    bool gz_init;
    uint8_t *out;
};

struct compressor *compressor_new(enum compression c, int level, compress_sink_fn *sink, void *arg,
                                  struct err *err)
{
    struct compressor *z = coder_new(sizeof(*z), c, sink, arg, "compress", err);

    if (!z)
        return NULL;
    switch (c) {
    case COMP_RAW:
        return z;
    case COMP_AUTO:
        ERR(err, EINVAL, "compress: 'auto' is for decoding only");
        free(z);
        return NULL;
    case COMP_ZSTD:
        z->zs = ZSTD_createCStream();
        z->out = malloc(COMPRESS_CHUNK);
        if (!z->zs || !z->out)
            goto nomem;
        if (ZSTD_isError(ZSTD_initCStream(z->zs, level ? level : ZSTD_CLEVEL_DEFAULT))) {
            ERR(err, EINVAL, "zstd: bad level %d", level);
            compressor_free(z);
            return NULL;
        }
        return z;
    case COMP_GZIP:
        z->out = malloc(COMPRESS_CHUNK);
        if (!z->out)
            goto nomem;
        if (deflateInit2(&z->gz, level ? level : 6, Z_DEFLATED, 15 + 16, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            ERR(err, EINVAL, "gzip: deflateInit2 failed (level %d)", level);
            compressor_free(z);
            return NULL;
        }
        z->gz_init = true;
        return z;
    }
nomem:
    ERR(err, ENOMEM, "compress: out of memory");
    compressor_free(z);
    return NULL;
}

static int zstd_compress_step(struct compressor *z, const void *p, size_t len, bool end,
                              struct err *err)
{
    ZSTD_inBuffer in = {p, len, 0};
    for (;;) {
        ZSTD_outBuffer out = {z->out, COMPRESS_CHUNK, 0};
        size_t r = ZSTD_compressStream2(z->zs, &out, &in, end ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(r))
            return ERR(err, EIO, "zstd: compress: %s", ZSTD_getErrorName(r));
        if (out.pos) {
            int rc = z->co.sink(z->co.arg, z->out, out.pos);
            if (rc)
                return ERR(err, rc, "compress: output failed");
        }
        if (end ? r == 0 : in.pos == in.size)
            return 0;
    }
}

static int gzip_compress_step(struct compressor *z, const void *p, size_t len, bool end,
                              struct err *err)
{
    z->gz.next_in = (Bytef *)(uintptr_t)p;
    z->gz.avail_in = (uInt)len;
    for (;;) {
        z->gz.next_out = z->out;
        z->gz.avail_out = COMPRESS_CHUNK;
        int r = deflate(&z->gz, end ? Z_FINISH : Z_NO_FLUSH);
        if (r == Z_STREAM_ERROR)
            return ERR(err, EIO, "gzip: deflate failed");
        size_t n = COMPRESS_CHUNK - z->gz.avail_out;
        if (n) {
            int rc = z->co.sink(z->co.arg, z->out, n);
            if (rc)
                return ERR(err, rc, "compress: output failed");
        }
        if (end ? r == Z_STREAM_END : (z->gz.avail_in == 0 && z->gz.avail_out != 0))
            return 0;
    }
}

int compressor_write(struct compressor *z, const void *p, size_t len, struct err *err)
{
    int rc;

    switch (z->co.c) {
    case COMP_RAW:
        rc = len ? z->co.sink(z->co.arg, p, len) : 0;
        return rc ? ERR(err, rc, "compress: output failed") : 0;
    case COMP_ZSTD:
        return zstd_compress_step(z, p, len, false, err);
    case COMP_GZIP:
        /* avail_in is 32-bit: feed big inputs in slices */
        while (len > 0) {
            size_t n = len > (1u << 30) ? (1u << 30) : len;
            rc = gzip_compress_step(z, p, n, false, err);
            if (rc)
                return rc;
            p = (const uint8_t *)p + n;
            len -= n;
        }
        return 0;
    case COMP_AUTO:
        break;
    }
    return ERR(err, EINVAL, "compress: bad codec");
}

int compressor_finish(struct compressor *z, struct err *err)
{
    switch (z->co.c) {
    case COMP_RAW:
        return 0;
    case COMP_ZSTD:
        return zstd_compress_step(z, NULL, 0, true, err);
    case COMP_GZIP:
        return gzip_compress_step(z, NULL, 0, true, err);
    case COMP_AUTO:
        break;
    }
    return ERR(err, EINVAL, "compress: bad codec");
}

void compressor_free(struct compressor *z)
{
    if (!z)
        return;
    if (z->zs)
        ZSTD_freeCStream(z->zs);
    if (z->gz_init)
        deflateEnd(&z->gz);
    free(z->out);
    free(z);
}

/* ---------------------------------------------------------------- decoder */

struct decompressor {
    struct coder co; /* first, for coder_new(); co.c is COMP_AUTO until the first bytes decide */
    ZSTD_DStream *zs;
    size_t zs_last; /* last ZSTD_decompressStream result: 0 = at a frame boundary */
    z_stream gz;
    bool gz_init;
    bool gz_member_done; /* the last member ended exactly (Z_STREAM_END) */
    uint8_t *out;
    uint8_t sniff[4];
    size_t n_sniff;
    uint64_t bytes_in, bytes_out;
};

static int decoder_setup(struct decompressor *d, struct err *err)
{
    switch (d->co.c) {
    case COMP_RAW:
        return 0;
    case COMP_ZSTD:
        d->zs = ZSTD_createDStream();
        if (!d->zs)
            return ERR(err, ENOMEM, "zstd: out of memory");
        ZSTD_initDStream(d->zs);
        d->zs_last = 1; /* nothing decoded yet: empty input is truncated */
        break;
    case COMP_GZIP:
        if (inflateInit2(&d->gz, 15 + 16) != Z_OK)
            return ERR(err, ENOMEM, "gzip: inflateInit2 failed");
        d->gz_init = true;
        break;
    case COMP_AUTO:
        return 0;
    }
    d->out = malloc(COMPRESS_CHUNK);
    if (!d->out)
        return ERR(err, ENOMEM, "decompress: out of memory");
    return 0;
}

struct decompressor *decompressor_new(enum compression c, compress_sink_fn *sink, void *arg,
                                      struct err *err)
{
    struct decompressor *d = coder_new(sizeof(*d), c, sink, arg, "decompress", err);

    if (!d)
        return NULL;
    if (decoder_setup(d, err)) {
        decompressor_free(d);
        return NULL;
    }
    return d;
}

static int emit(struct decompressor *d, const uint8_t *p, size_t n, struct err *err)
{
    int rc;

    if (!n)
        return 0;
    d->bytes_out += n;
    rc = d->co.sink(d->co.arg, p, n);
    return rc ? ERR(err, rc, "decompress: output failed") : 0;
}

static int zstd_decompress(struct decompressor *d, const uint8_t *p, size_t len,
                           struct err *err)
{
    ZSTD_inBuffer in = {p, len, 0};
    if (len == 0)
        return 0;
    for (;;) {
        ZSTD_outBuffer out = {d->out, COMPRESS_CHUNK, 0};
        size_t r = ZSTD_decompressStream(d->zs, &out, &in);
        if (ZSTD_isError(r))
            return ERR(err, EBADMSG, "zstd: corrupt data at input byte %llu: %s",
                       (unsigned long long)(d->bytes_in + in.pos), ZSTD_getErrorName(r));
        d->zs_last = r;
        int rc = emit(d, d->out, out.pos, err);
        if (rc)
            return rc;
        /* done when all input is consumed and either the frame ended (r == 0: fully flushed;
         * calling again would start a new frame) or the output buffer was not filled */
        if (in.pos == in.size && (r == 0 || out.pos < out.size))
            return 0;
    }
}

static int gzip_decompress(struct decompressor *d, const uint8_t *p, size_t len,
                           struct err *err)
{
    d->gz.next_in = (Bytef *)(uintptr_t)p;
    d->gz.avail_in = (uInt)len;
    for (;;) {
        d->gz.next_out = d->out;
        d->gz.avail_out = COMPRESS_CHUNK;
        int r = inflate(&d->gz, Z_NO_FLUSH);
        size_t n = COMPRESS_CHUNK - d->gz.avail_out;
        if (r == Z_NEED_DICT || r == Z_DATA_ERROR || r == Z_STREAM_ERROR || r == Z_MEM_ERROR)
            return ERR(err, EBADMSG, "gzip: corrupt data at input byte %llu: %s",
                       (unsigned long long)(d->bytes_in + (len - d->gz.avail_in)),
                       d->gz.msg ? d->gz.msg : "inflate error");
        int rc = emit(d, d->out, n, err);
        if (rc)
            return rc;
        if (r == Z_STREAM_END) {
            d->gz_member_done = true;
            if (d->gz.avail_in == 0)
                return 0;
            inflateReset(&d->gz); /* another member follows */
            d->gz_member_done = false;
            continue;
        }
        d->gz_member_done = false;
        if (r == Z_BUF_ERROR || (d->gz.avail_in == 0 && d->gz.avail_out != 0))
            return 0; /* all input consumed and output drained: needs more input */
    }
}

static int decompress_dispatch(struct decompressor *d, const uint8_t *p, size_t len,
                               struct err *err)
{
    int rc = 0;

    switch (d->co.c) {
    case COMP_RAW:
        rc = emit(d, p, len, err);
        break;
    case COMP_ZSTD:
        rc = zstd_decompress(d, p, len, err);
        break;
    case COMP_GZIP:
        while (len > 0 && !rc) {
            size_t n = len > (1u << 30) ? (1u << 30) : len;
            rc = gzip_decompress(d, p, n, err);
            p += n;
            len -= n;
        }
        break;
    case COMP_AUTO:
        return ERR(err, EINVAL, "decompress: codec undecided");
    }
    d->bytes_in += len;
    return rc;
}

/* COMP_AUTO ends here: the sniffed bytes pick the codec, which is set up and fed them. */
static int decoder_decide(struct decompressor *d, struct err *err)
{
    int rc;

    d->co.c = compression_sniff(d->sniff, d->n_sniff);
    rc = decoder_setup(d, err);
    if (!rc)
        rc = decompress_dispatch(d, d->sniff, d->n_sniff, err);
    return rc;
}

int decompressor_write(struct decompressor *d, const void *p, size_t len, struct err *err)
{
    const uint8_t *b = p;

    if (d->co.c == COMP_AUTO) {
        /* collect up to 4 bytes to decide */
        while (len > 0 && d->n_sniff < sizeof(d->sniff)) {
            d->sniff[d->n_sniff++] = *b++;
            len--;
        }
        if (d->n_sniff < sizeof(d->sniff))
            return 0;
        int rc = decoder_decide(d, err);
        if (rc)
            return rc;
    }
    return decompress_dispatch(d, b, len, err);
}

int decompressor_finish(struct decompressor *d, struct err *err)
{
    if (d->co.c == COMP_AUTO) {
        /* fewer than 4 bytes in total: decide on what we have */
        int rc = decoder_decide(d, err);
        if (rc)
            return rc;
    }
    switch (d->co.c) {
    case COMP_RAW:
        return 0;
    case COMP_ZSTD:
        if (d->zs_last != 0)
            return ERR(err, EBADMSG, "zstd: truncated stream (%llu compressed bytes)",
                       (unsigned long long)d->bytes_in);
        return 0;
    case COMP_GZIP:
        if (!d->gz_member_done)
            return ERR(err, EBADMSG, "gzip: truncated stream (%llu compressed bytes)",
                       (unsigned long long)d->bytes_in);
        return 0;
    case COMP_AUTO:
        break;
    }
    return ERR(err, EINVAL, "decompress: bad codec");
}

uint64_t decompressor_bytes_in(const struct decompressor *d)
{
    return d->bytes_in;
}

uint64_t decompressor_bytes_out(const struct decompressor *d)
{
    return d->bytes_out;
}

void decompressor_free(struct decompressor *d)
{
    if (!d)
        return;
    if (d->zs)
        ZSTD_freeDStream(d->zs);
    if (d->gz_init)
        inflateEnd(&d->gz);
    free(d->out);
    free(d);
}

/* ---------------------------------------------------------------- helpers */

static int sink_buf(void *arg, const uint8_t *p, size_t len)
{
    return buf_append(arg, p, len);
}

int compress_buf(enum compression c, int level, const void *p, size_t len, struct buf *out,
                 struct err *err)
{
    struct compressor *z = compressor_new(c, level, sink_buf, out, err);
    int rc;

    if (!z)
        return err && err->code ? err->code : ENOMEM;
    rc = compressor_write(z, p, len, err);
    if (!rc)
        rc = compressor_finish(z, err);
    compressor_free(z);
    return rc;
}

int decompress_buf(enum compression c, const void *p, size_t len, struct buf *out,
                   struct err *err)
{
    struct decompressor *d = decompressor_new(c, sink_buf, out, err);
    int rc;

    if (!d)
        return err && err->code ? err->code : ENOMEM;
    rc = decompressor_write(d, p, len, err);
    if (!rc)
        rc = decompressor_finish(d, err);
    decompressor_free(d);
    return rc;
}

struct fd_sink {
    int fd;
    uint64_t off;
};

static int sink_fd(void *arg, const uint8_t *p, size_t len)
{
    struct fd_sink *s = arg;
    int rc = fileio_pwrite_all(s->fd, p, len, s->off);

    if (rc)
        return rc;
    s->off += len;
    return 0;
}

static int tmpfile_in(const char *dir, struct err *err)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    char path[4096];

    if (fd >= 0)
        return fd;
    if (snprintf(path, sizeof(path), "%s/.bfs-tmp-XXXXXX", dir) >= (int)sizeof(path)) {
        ERR(err, ENAMETOOLONG, "compress: temp dir path too long");
        return -1;
    }
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        ERR(err, errno, "compress: create temp file in %s: %s", dir, errno_name(errno));
        return -1;
    }
    unlink(path);
    return fd;
}

/* Reads in_fd from offset 0 to EOF in COMPRESS_CHUNK pieces and hands each to feed (a
 * compressor_write or decompressor_write); what names the direction in messages. */
typedef int feed_fn(void *coder, const void *p, size_t len, struct err *err);
static int feed_fd(int in_fd, feed_fn *feed, void *coder, const char *what, struct err *err)
{
    uint8_t *chunk = malloc(COMPRESS_CHUNK);
    uint64_t off = 0;
    int rc = 0;

    if (chunk == NULL)
        return ERR(err, ENOMEM, "%s: out of memory", what);
    for (;;) {
        size_t got = 0;
        rc = fileio_pread_full(in_fd, chunk, COMPRESS_CHUNK, off, &got);
        if (rc) {
            rc = ERR(err, rc, "%s: read input at %llu: %s", what, (unsigned long long)off,
                     errno_name(rc));
            break;
        }
        if (got == 0)
            break;
        rc = feed(coder, chunk, got, err);
        if (rc)
            break;
        off += got;
        if (got < COMPRESS_CHUNK)
            break;
    }
    free(chunk);
    return rc;
}

static int feed_compressor(void *coder, const void *p, size_t len, struct err *err)
{
    return compressor_write(coder, p, len, err);
}

static int feed_decompressor(void *coder, const void *p, size_t len, struct err *err)
{
    return decompressor_write(coder, p, len, err);
}

int compressor_write_fd(struct compressor *z, int fd, struct err *err)
{
    return feed_fd(fd, feed_compressor, z, "compress", err);
}

int compress_source_to_tmpfile(enum compression c, int level, compress_source_fn *src, void *arg,
                               const char *tmp_dir, int *out_fd, uint64_t *len_out, struct err *err)
{
    struct fd_sink s = {.fd = -1, .off = 0};
    struct compressor *z = NULL;
    int rc = 0;

    *out_fd = -1;
    s.fd = tmpfile_in(tmp_dir, err);
    if (s.fd < 0)
        return err && err->code ? err->code : EIO;
    z = compressor_new(c, level, sink_fd, &s, err);
    if (z == NULL)
        rc = err && err->code ? err->code : ENOMEM;
    if (rc == 0)
        rc = src(arg, z, err);
    if (rc == 0)
        rc = compressor_finish(z, err);
    compressor_free(z);
    if (rc) {
        close(s.fd);
        return rc;
    }
    *out_fd = s.fd;
    *len_out = s.off;
    return 0;
}

/* The inputs of compress_fd_to_tmpfile / compress_files_to_tmpfile: the descriptors fds[i],
 * or else the files paths[i]. */
struct inputs {
    const int *fds;
    const char *const *paths;
    size_t n;
};

static int inputs_source(void *arg, struct compressor *z, struct err *err)
{
    const struct inputs *in = arg;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < in->n; i++) {
        int fd = in->fds ? in->fds[i] : open(in->paths[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return ERR(err, errno, "compress: open %s: %s", in->paths[i], errno_name(errno));
        rc = compressor_write_fd(z, fd, err);
        if (!in->fds)
            close(fd);
    }
    return rc;
}

static int compress_inputs_to_tmpfile(enum compression c, int level, const int *fds,
                                      const char *const *paths, size_t n, const char *tmp_dir,
                                      int *out_fd, uint64_t *len_out, struct err *err)
{
    struct inputs in = {fds, paths, n};
    return compress_source_to_tmpfile(c, level, inputs_source, &in, tmp_dir, out_fd, len_out, err);
}

int compress_fd_to_tmpfile(enum compression c, int level, int in_fd, const char *tmp_dir,
                           int *out_fd, uint64_t *len_out, struct err *err)
{
    return compress_inputs_to_tmpfile(c, level, &in_fd, NULL, 1, tmp_dir, out_fd, len_out, err);
}

int compress_files_to_tmpfile(enum compression c, int level, const char *const *paths, size_t n,
                              const char *tmp_dir, int *out_fd, uint64_t *len_out,
                              struct err *err)
{
    return compress_inputs_to_tmpfile(c, level, NULL, paths, n, tmp_dir, out_fd, len_out, err);
}

int decompress_fd(enum compression c, int in_fd, compress_sink_fn *sink, void *arg,
                  struct err *err)
{
    struct decompressor *d = decompressor_new(c, sink, arg, err);
    int rc = d ? 0 : (err && err->code ? err->code : ENOMEM);

    if (rc == 0)
        rc = feed_fd(in_fd, feed_decompressor, d, "decompress", err);
    if (rc == 0)
        rc = decompressor_finish(d, err);
    decompressor_free(d);
    return rc;
}
