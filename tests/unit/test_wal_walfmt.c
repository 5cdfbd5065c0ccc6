/* tests/unit/test_wal_walfmt.c - WAL header/frame parsing and the checksum. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wal/walfmt.h"

static void make_header(uint8_t out[WAL_HEADER_BYTES], uint32_t page_size, bool be)
{
    struct wal_header h = {0};
    h.page_size = page_size;
    h.big_endian = be;
    h.ckpt_seq = 7;
    h.salt1 = 0x11223344;
    h.salt2 = 0xa5a5a5a5;
    wal_header_encode(&h, out);
}

Test(wal_walfmt, header_round_trip_all_page_sizes_both_orders)
{
    for (uint32_t ps = 512; ps <= 65536; ps *= 2) {
        for (int be = 0; be <= 1; be++) {
            uint8_t b[WAL_HEADER_BYTES];
            struct wal_header h;
            struct err e = {0};

            make_header(b, ps, be);
            cr_assert_eq(be32_load(b), be ? WAL_MAGIC_BE : WAL_MAGIC_LE);
            cr_assert_eq(be32_load(b + 8), ps, "page size field for %u", ps);
            cr_assert_eq(wal_header_parse(b, &h, &e), 0, "%u/%d: %s", ps, be, e.msg);
            cr_expect_eq(h.page_size, ps);
            cr_expect_eq(h.big_endian, (bool)be);
            cr_expect_eq(h.version, WAL_FORMAT_VERSION);
            cr_expect_eq(h.ckpt_seq, 7u);
            cr_expect_eq(h.salt1, 0x11223344u);
            cr_expect_eq(h.salt2, 0xa5a5a5a5u);
            cr_expect_eq(h.cksum1, be32_load(b + 24));
            cr_expect_eq(h.cksum2, be32_load(b + 28));
        }
    }
}

static void reseal(uint8_t b[WAL_HEADER_BYTES])
{
    uint32_t s[2] = {0, 0};
    wal_checksum(be32_load(b) == WAL_MAGIC_BE, b, 24, s);
    be32_store(b + 24, s[0]);
    be32_store(b + 28, s[1]);
}

/* SQLite writes 65536 into the WAL header as is (checked with 3.40.1: bytes 00 01 00 00);
 * a stored 1 (the database header's convention) is read as 65536 too. */
Test(wal_walfmt, page_size_65536_stored_as_1_or_65536)
{
    uint8_t b[WAL_HEADER_BYTES];
    struct wal_header h;

    make_header(b, 65536, false);
    cr_assert_eq(be32_load(b + 8), 65536u);
    cr_assert_eq(wal_header_parse(b, &h, NULL), 0);
    cr_assert_eq(h.page_size, 65536u);
    be32_store(b + 8, 1);
    reseal(b);
    cr_assert_eq(wal_header_parse(b, &h, NULL), 0);
    cr_assert_eq(h.page_size, 65536u);
}

Test(wal_walfmt, header_parse_errors)
{
    static const struct {
        size_t off;
        uint32_t value;
        bool reseal;
        const char *want;
    } cases[] = {
        {0, 0x377f0681, true, "bad magic"},  {0, 0, true, "bad magic"},
        {4, 3007001, true, "version"},       {8, 0, true, "page size"},
        {8, 256, true, "page size"},         {8, 1000, true, "page size"},
        {8, 131072, true, "page size"},      {8, 2, true, "page size"},
        {16, 0x11223345, false, "checksum"}, {24, 0, false, "checksum"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t b[WAL_HEADER_BYTES];
        struct wal_header h;
        struct err e = {0};

        make_header(b, 4096, false);
        be32_store(b + cases[i].off, cases[i].value);
        if (cases[i].reseal)
            reseal(b);
        cr_assert_eq(wal_header_parse(b, &h, &e), EBADMSG, "case %zu", i);
        cr_expect_eq(e.code, EBADMSG);
        cr_expect(strstr(e.msg, cases[i].want) != NULL, "case %zu: '%s'", i, e.msg);
    }
}

Test(wal_walfmt, page_size_validity)
{
    cr_expect(wal_page_size_valid(512));
    cr_expect(wal_page_size_valid(65536));
    cr_expect(!wal_page_size_valid(0));
    cr_expect(!wal_page_size_valid(1));
    cr_expect(!wal_page_size_valid(256));
    cr_expect(!wal_page_size_valid(3000));
    cr_expect(!wal_page_size_valid(131072));
}

Test(wal_walfmt, checksum_step_both_byte_orders)
{
    const uint8_t le[16] = {1, 0, 0, 0, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0x80};
    const uint8_t be[16] = {0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 0};
    uint32_t a[2] = {0, 0}, b[2] = {0, 0};

    /* s0 = 0+1+0 = 1, s1 = 0+2+1 = 3; then s0 = 1+0xffffffff+3 = 3 (mod 2^32),
     * s1 = 3+0x80000000+3 = 0x80000006 */
    wal_checksum(false, le, 16, a);
    wal_checksum(true, be, 16, b);
    cr_expect_eq(a[0], 3u);
    cr_expect_eq(a[1], 0x80000006u);
    cr_expect_eq(b[0], a[0]);
    cr_expect_eq(b[1], a[1]);
    /* the same bytes read in the other order give a different result */
    uint32_t c[2] = {0, 0};
    wal_checksum(true, le, 16, c);
    cr_expect(c[0] != a[0] || c[1] != a[1]);
}

/* SQLite's walChecksumBytes written out plainly: the reference the block form must match. */
static void plain_checksum(bool be, const uint8_t *p, size_t len, uint32_t s[2])
{
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint32_t a, b;
        if (be) {
            a = be32_load(p + i);
            b = be32_load(p + i + 4);
        } else {
            a = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 |
                (uint32_t)p[i + 3] << 24;
            b = (uint32_t)p[i + 4] | (uint32_t)p[i + 5] << 8 | (uint32_t)p[i + 6] << 16 |
                (uint32_t)p[i + 7] << 24;
        }
        s[0] += a + s[1];
        s[1] += b + s[0];
    }
}

Test(wal_walfmt, checksum_block_weights_are_fibonacci_numbers)
{
    size_t n;
    const uint32_t *w = wal_checksum_weights(&n);
    uint32_t fib[200] = {0, 1};

    cr_assert(n >= 3 && n < 200);
    for (size_t i = 2; i < n; i++)
        fib[i] = fib[i - 1] + fib[i - 2];
    for (size_t k = 0; k < n; k++)
        cr_assert_eq(w[k], fib[n - 1 - k], "weight %zu", k);
}

Test(wal_walfmt, checksum_by_blocks_equals_the_plain_step)
{
    static uint8_t data[65536 + 24 + 8];
    uint32_t x = 0x9e3779b9;

    for (size_t i = 0; i < sizeof(data); i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data[i] = (uint8_t)x;
    }
    /* every length up to three blocks and a bit, then every page size; unaligned starts too
     * (frames start 24 bytes into a buffer); seeds that wrap */
    for (int be = 0; be <= 1; be++) {
        for (size_t off = 0; off <= 24; off += 8) {
            for (size_t len = 0; len <= 1600; len += 8) {
                uint32_t a[2] = {0xfffffff0u + (uint32_t)len, 7u * (uint32_t)off}, b[2];
                memcpy(b, a, sizeof(b));
                wal_checksum(be, data + off, len, a);
                plain_checksum(be, data + off, len, b);
                cr_assert(a[0] == b[0] && a[1] == b[1], "be=%d off=%zu len=%zu", be, off, len);
            }
            for (uint32_t ps = WAL_MIN_PAGE; ps <= WAL_MAX_PAGE; ps *= 2) {
                uint32_t a[2] = {1, 2}, b[2] = {1, 2};
                wal_checksum(be, data + off, ps, a);
                plain_checksum(be, data + off, ps, b);
                cr_assert(a[0] == b[0] && a[1] == b[1], "be=%d off=%zu page=%u", be, off, ps);
            }
        }
    }
}

Test(wal_walfmt, frame_header_and_checksum)
{
    uint8_t f[WAL_FRAME_HEADER_BYTES + 512];
    struct wal_frame_header fh;
    uint32_t s[2] = {5, 9}, t[2] = {5, 9};

    memset(f, 0xab, sizeof(f));
    be32_store(f, 3);
    be32_store(f + 4, 10);
    be32_store(f + 8, 0x01020304);
    be32_store(f + 12, 0x05060708);
    wal_checksum(false, f, 8, t);
    wal_checksum(false, f + 24, 512, t);
    be32_store(f + 16, t[0]);
    be32_store(f + 20, t[1]);
    wal_frame_header_parse(f, &fh);
    cr_expect_eq(fh.pgno, 3u);
    cr_expect_eq(fh.db_pages, 10u);
    cr_expect_eq(fh.salt1, 0x01020304u);
    cr_expect_eq(fh.salt2, 0x05060708u);
    cr_expect_eq(fh.cksum1, t[0]);
    cr_assert(wal_frame_checksum_ok(false, f, f + 24, 512, s));
    cr_expect_eq(s[0], t[0]);
    f[24 + 100] ^= 1;
    s[0] = 5;
    s[1] = 9;
    cr_expect(!wal_frame_checksum_ok(false, f, f + 24, 512, s));
}

Test(wal_walfmt, frame_offsets)
{
    cr_expect_eq(wal_frame_offset(4096, 1), 32u);
    cr_expect_eq(wal_frame_offset(4096, 2), 32u + 4120u);
    cr_expect_eq(wal_frame_offset(65536, 100000), 32ull + 99999ull * 65560ull);
    cr_expect_eq(wal_frame_size(512), 536u);
}

/* The chain of a stolen WAL's frames, rechained onto a generation, is computed without reading
 * them (wal_chain_shift): it must equal rechaining them for real, for every page size, both
 * byte orders and any number of frames. */
Test(wal_walfmt, chain_shift_equals_rechaining)
{
    uint32_t seed = 12345;
    for (uint32_t ps = 512; ps <= 65536; ps *= 4) {
        for (int be = 0; be <= 1; be++) {
            for (size_t n = 1; n <= 9; n += 4) {
                size_t fs = 24 + (size_t)ps;
                uint8_t *a = malloc(n * fs), *b = malloc(n * fs);
                cr_assert(a && b);
                for (size_t i = 0; i < n * fs; i++) {
                    seed = seed * 1103515245u + 12345u;
                    a[i] = (uint8_t)(seed >> 16);
                }
                memcpy(b, a, n * fs);
                uint32_t s_in[2] = {seed, seed ^ 0x5bd1e995u}, s[2] = {s_in[0], s_in[1]};
                wal_frames_rechain(be, 1, 2, ps, a, n, s); /* the "stored" chain */
                uint32_t t_in[2] = {0xdeadbeefu, 7}, t[2] = {t_in[0], t_in[1]};
                wal_frames_rechain(be, 3, 4, ps, b, n, t); /* the shipped one */
                uint32_t got[2];
                wal_chain_shift(ps, n, s_in, s, t_in, got);
                cr_expect_eq(got[0], t[0], "ps %u be %d n %zu", ps, be, n);
                cr_expect_eq(got[1], t[1], "ps %u be %d n %zu", ps, be, n);
                free(a);
                free(b);
            }
        }
    }
}
