/* tests/unit/test_compress.c - codec round trips, chunked feeding, multi-member/multi-frame,
 * corrupt and truncated input. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "wal/compress.h"

static uint8_t *sample(size_t n)
{
    uint8_t *p = malloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (i % 7 == 0) ? (uint8_t)(x >> 24) : (uint8_t)(i / 100); /* half compressible */
    }
    return p;
}

static void round_trip(enum compression c, size_t n, size_t chunk)
{
    uint8_t *src = sample(n);
    struct buf z, back;
    struct err err = {0};

    buf_init(&z, 64u << 20);
    buf_init(&back, 64u << 20);
    cr_assert_eq(compress_buf(c, 0, src, n, &z, &err), 0, "%s", err.msg);
    struct decompressor *d = decompressor_new(c, (compress_sink_fn *)(void *)buf_append, &back,
                                              &err);
    cr_assert_not_null(d);
    for (size_t off = 0; off < z.len; off += chunk) {
        size_t k = z.len - off < chunk ? z.len - off : chunk;
        cr_assert_eq(decompressor_write(d, z.data + off, k, &err), 0, "%s", err.msg);
    }
    cr_assert_eq(decompressor_finish(d, &err), 0, "%s", err.msg);
    cr_assert_eq(decompressor_bytes_out(d), n);
    decompressor_free(d);
    cr_assert_eq(back.len, n, "%s: got %zu want %zu", compression_ext(c), back.len, n);
    cr_assert(n == 0 || memcmp(back.data, src, n) == 0);
    if (c != COMP_RAW && n > 100000)
        cr_assert_lt(z.len, n, "should compress");
    buf_free(&z);
    buf_free(&back);
    free(src);
}

Test(compress, names_parse_like_bottomless)
{
    enum compression c;
    cr_assert_eq(compression_parse("zstd", &c), 0);
    cr_assert_eq(c, COMP_ZSTD);
    cr_assert_eq(compression_parse("gz", &c), 0);
    cr_assert_eq(c, COMP_GZIP);
    cr_assert_eq(compression_parse("gzip", &c), 0);
    cr_assert_eq(c, COMP_GZIP);
    cr_assert_eq(compression_parse("raw", &c), 0);
    cr_assert_eq(c, COMP_RAW);
    cr_assert_eq(compression_parse("none", &c), 0); /* the mount option's spelling */
    cr_assert_eq(c, COMP_RAW);
    cr_assert_eq(compression_parse("", &c), 0);
    cr_assert_eq(c, COMP_RAW);
    cr_assert_eq(compression_parse("xz", &c), EINVAL);
    cr_assert_eq(compression_parse("ZSTD", &c), EINVAL);
    cr_assert_str_eq(compression_ext(COMP_GZIP), "gz");
    cr_assert_str_eq(compression_ext(COMP_ZSTD), "zstd");
    cr_assert_str_eq(compression_ext(COMP_RAW), "raw");
    cr_assert_eq(COMPRESS_DEFAULT, COMP_ZSTD);
}

Test(compress, round_trips_all_codecs_any_chunking)
{
    enum compression cs[] = {COMP_RAW, COMP_GZIP, COMP_ZSTD};
    size_t sizes[] = {0, 1, 4096, 300000, 3u << 20};
    size_t chunks[] = {1, 7, 65536, SIZE_MAX};
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < sizeof(sizes) / sizeof(*sizes); j++)
            for (size_t k = 0; k < sizeof(chunks) / sizeof(*chunks); k++) {
                if (chunks[k] == 1 && sizes[j] > 300000)
                    continue;
                round_trip(cs[i], sizes[j], chunks[k]);
            }
}

Test(compress, auto_detects_codec)
{
    uint8_t *src = sample(200000);
    enum compression cs[] = {COMP_RAW, COMP_GZIP, COMP_ZSTD};
    for (int i = 0; i < 3; i++) {
        struct buf z, back;
        buf_init(&z, 1u << 24);
        buf_init(&back, 1u << 24);
        cr_assert_eq(compress_buf(cs[i], 0, src, 200000, &z, NULL), 0);
        cr_assert_eq(compression_sniff(z.data, z.len), cs[i] == COMP_RAW ? COMP_RAW : cs[i]);
        cr_assert_eq(decompress_buf(COMP_AUTO, z.data, z.len, &back, NULL), 0);
        cr_assert_eq(back.len, 200000);
        cr_assert(memcmp(back.data, src, 200000) == 0);
        buf_free(&z);
        buf_free(&back);
    }
    struct buf back;
    buf_init(&back, 100);
    cr_assert_eq(decompress_buf(COMP_AUTO, "ab", 2, &back, NULL), 0);
    cr_assert_eq(back.len, 2);
    buf_free(&back);
    free(src);
}

Test(compress, gzip_accepts_several_members)
{
    struct buf z, back;
    buf_init(&z, 1u << 20);
    buf_init(&back, 1u << 20);
    cr_assert_eq(compress_buf(COMP_GZIP, 0, "hello ", 6, &z, NULL), 0);
    cr_assert_eq(compress_buf(COMP_GZIP, 9, "world", 5, &z, NULL), 0);
    for (size_t split = 1; split < z.len; split += 3) {
        struct decompressor *d =
            decompressor_new(COMP_GZIP, (compress_sink_fn *)(void *)buf_append, &back, NULL);
        cr_assert_eq(decompressor_write(d, z.data, split, NULL), 0);
        cr_assert_eq(decompressor_write(d, z.data + split, z.len - split, NULL), 0);
        cr_assert_eq(decompressor_finish(d, NULL), 0);
        decompressor_free(d);
        cr_assert_eq(back.len, 11);
        cr_assert(memcmp(back.data, "hello world", 11) == 0);
        buf_reset(&back);
    }
    buf_free(&z);
    buf_free(&back);
}

Test(compress, zstd_accepts_several_frames)
{
    struct buf z, back;
    buf_init(&z, 1u << 20);
    buf_init(&back, 1u << 20);
    cr_assert_eq(compress_buf(COMP_ZSTD, 0, "hello ", 6, &z, NULL), 0);
    cr_assert_eq(compress_buf(COMP_ZSTD, 19, "world", 5, &z, NULL), 0);
    cr_assert_eq(decompress_buf(COMP_ZSTD, z.data, z.len, &back, NULL), 0);
    cr_assert_eq(back.len, 11);
    cr_assert(memcmp(back.data, "hello world", 11) == 0);
    buf_free(&z);
    buf_free(&back);
}

static void expect_bad(enum compression c, const uint8_t *p, size_t len, const char *what)
{
    struct buf back;
    struct err err = {0};
    buf_init(&back, 64u << 20);
    int rc = decompress_buf(c, p, len, &back, &err);
    cr_assert_eq(rc, EBADMSG, "%s %s: rc %d", compression_ext(c), what, rc);
    cr_assert(strstr(err.msg, c == COMP_GZIP ? "gzip" : "zstd"), "%s", err.msg);
    buf_free(&back);
}

Test(compress, corrupt_and_truncated_input_is_ebadmsg)
{
    uint8_t *src = sample(500000);
    enum compression cs[] = {COMP_GZIP, COMP_ZSTD};
    for (int i = 0; i < 2; i++) {
        struct buf z;
        buf_init(&z, 1u << 24);
        cr_assert_eq(compress_buf(cs[i], 0, src, 500000, &z, NULL), 0);
        expect_bad(cs[i], z.data, z.len / 2, "truncated half");
        expect_bad(cs[i], z.data, z.len - 1, "truncated by one");
        expect_bad(cs[i], z.data, 0, "empty");
        uint8_t *c = malloc(z.len);
        memcpy(c, z.data, z.len);
        c[z.len / 3] ^= 0x10;
        expect_bad(cs[i], c, z.len, "flipped bit");
        memcpy(c, z.data, z.len);
        c[0] ^= 0xff;
        expect_bad(cs[i], c, z.len, "bad magic");
        free(c);
        buf_free(&z);
    }
    free(src);
}

static int failing_sink(void *arg, const uint8_t *p, size_t len)
{
    (void)arg, (void)p, (void)len;
    return ENOSPC;
}

Test(compress, sink_errors_abort)
{
    struct err err = {0};
    struct compressor *z = compressor_new(COMP_ZSTD, 0, failing_sink, NULL, &err);
    uint8_t *src = sample(1u << 20);
    int rc = compressor_write(z, src, 1u << 20, &err);
    if (!rc)
        rc = compressor_finish(z, &err);
    cr_assert_eq(rc, ENOSPC);
    compressor_free(z);
    free(src);
    cr_assert_null(compressor_new(COMP_AUTO, 0, failing_sink, NULL, NULL));
}

static int sink_buf(void *arg, const uint8_t *p, size_t len)
{
    return buf_append(arg, p, len);
}

Test(compress, fd_helpers_round_trip)
{
    char path[] = "/tmp/bfs-test-compress-XXXXXX";
    int fd = mkstemp(path);
    size_t n = 2u << 20;
    uint8_t *src = sample(n);
    enum compression cs[] = {COMP_RAW, COMP_GZIP, COMP_ZSTD};

    cr_assert_geq(fd, 0);
    unlink(path);
    cr_assert_eq(write(fd, src, n), (ssize_t)n);
    for (int i = 0; i < 3; i++) {
        int zfd = -1;
        uint64_t zlen = 0;
        struct err err = {0};
        struct buf back;
        cr_assert_eq(compress_fd_to_tmpfile(cs[i], 0, fd, "/tmp", &zfd, &zlen, &err), 0, "%s",
                     err.msg);
        cr_assert_eq((uint64_t)lseek(zfd, 0, SEEK_END), zlen);
        buf_init(&back, 8u << 20);
        cr_assert_eq(decompress_fd(cs[i], zfd, sink_buf, &back, &err), 0, "%s", err.msg);
        cr_assert_eq(back.len, n);
        cr_assert(memcmp(back.data, src, n) == 0);
        buf_free(&back);
        close(zfd);
    }
    close(fd);
    free(src);
}

/* Many files as one stream (a merged batch): the concatenation comes back, each file read in
 * turn; a missing file is an error naming it, not a shorter object. */
Test(compress, files_helper_concatenates_and_fails_on_a_missing_file)
{
    enum { N_FILES = 40, PART = 70000 };
    char dir[] = "/tmp/bfs-test-compress-files-XXXXXX";
    char *paths[N_FILES];
    uint8_t *src = sample((size_t)N_FILES * PART);
    cr_assert_not_null(mkdtemp(dir));
    for (int i = 0; i < N_FILES; i++) {
        cr_assert_geq(asprintf(&paths[i], "%s/%03d.seg", dir, i), 0);
        int fd = open(paths[i], O_WRONLY | O_CREAT | O_TRUNC, 0600);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, src + (size_t)i * PART, PART), (ssize_t)PART);
        close(fd);
    }
    enum compression cs[] = {COMP_RAW, COMP_GZIP, COMP_ZSTD};
    for (int i = 0; i < 3; i++) {
        int zfd = -1;
        uint64_t zlen = 0;
        struct err err = {0};
        struct buf back;
        cr_assert_eq(compress_files_to_tmpfile(cs[i], 0, (const char *const *)paths, N_FILES,
                                               "/tmp", &zfd, &zlen, &err),
                     0, "%s", err.msg);
        buf_init(&back, 8u << 20);
        cr_assert_eq(decompress_fd(cs[i], zfd, sink_buf, &back, &err), 0, "%s", err.msg);
        cr_assert_eq(back.len, (size_t)N_FILES * PART);
        cr_assert(memcmp(back.data, src, back.len) == 0);
        buf_free(&back);
        close(zfd);
    }
    unlink(paths[17]);
    int zfd = -1;
    uint64_t zlen = 0;
    struct err err = {0};
    cr_assert_eq(compress_files_to_tmpfile(COMP_ZSTD, 0, (const char *const *)paths, N_FILES,
                                           "/tmp", &zfd, &zlen, &err),
                 ENOENT);
    cr_expect(strstr(err.msg, "017.seg") != NULL, "%s", err.msg);
    cr_expect_eq(zfd, -1);
    for (int i = 0; i < N_FILES; i++) {
        unlink(paths[i]);
        free(paths[i]);
    }
    rmdir(dir);
    free(src);
}
