/* tests/unit/test_layout.c - generation ids, keys, batch names, object encodings, escapes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "wal/layout.h"

static struct gen_id parse_ok(const char *s)
{
    struct gen_id id;
    struct err err = {0};
    cr_assert_eq(gen_id_parse(s, strlen(s), &id, &err), 0, "%s", err.msg);
    return id;
}

Test(layout, published_generation_ids_give_published_times)
{
    struct gen_id a = parse_ok("e4e46038-04e1-7b18-a1f4-d269ac2d19dd");
    struct gen_id b = parse_ok("e4eb3c21-ff53-7b2e-a7a4-3ac7d9f0f3a8");
    char t[32];

    layout_format_utc(gen_id_created_s(&a), t, sizeof(t));
    cr_assert_str_eq(t, "2023-11-29T07:34:00Z");
    layout_format_utc(gen_id_created_s(&b), t, sizeof(t));
    cr_assert_str_eq(t, "2022-12-23T08:24:52Z");
    struct timespec ts;
    gen_id_created(&b, &ts);
    cr_assert_eq(ts.tv_nsec / 1000000, 500, "ms %ld", ts.tv_nsec / 1000000);
    cr_assert_lt(gen_id_cmp(&a, &b), 0, "newer id must sort first");
}

Test(layout, generation_ids_round_trip_time_and_sort_newest_first)
{
    const uint8_t rnd[10] = {0xff, 0xee, 0xdd, 1, 2, 3, 4, 5, 6, 7};
    struct gen_id prev;
    char s[GEN_ID_STR_LEN + 1], prev_s[GEN_ID_STR_LEN + 1];

    for (int i = 0; i < 200; i++) {
        int64_t sec = 1700000000 + i * 7919;
        long nsec = (i * 37) % 1000 * 1000000L + 123456;
        struct gen_id id;
        gen_id_from_parts(sec, nsec, rnd, &id);
        cr_assert_eq(gen_id_created_s(&id), sec);
        struct timespec ts;
        gen_id_created(&id, &ts);
        cr_assert_eq(ts.tv_nsec / 1000000, nsec / 1000000, "ms at %d", i);
        gen_id_format(&id, s);
        cr_assert_eq(strlen(s), 36);
        cr_assert_eq(s[14], '7', "version nibble in %s", s);
        cr_assert(strchr("89ab", s[19]), "variant in %s", s);
        struct gen_id back = parse_ok(s);
        cr_assert(gen_id_eq(&id, &back));
        if (i > 0) {
            cr_assert_lt(gen_id_cmp(&id, &prev), 0, "newer first");
            cr_assert_lt(strcmp(s, prev_s), 0, "string order too");
        }
        prev = id;
        memcpy(prev_s, s, sizeof(s));
    }
}

Test(layout, gen_id_new_is_random_and_current)
{
    struct gen_id a, b;
    struct timespec now = {.tv_sec = 1701243240, .tv_nsec = 5};
    cr_assert_eq(gen_id_new(&now, &a, NULL), 0);
    cr_assert_eq(gen_id_new(&now, &b, NULL), 0);
    cr_assert_not(gen_id_eq(&a, &b));
    cr_assert_eq(gen_id_created_s(&a), 1701243240);
    cr_assert_eq(gen_id_new(NULL, &a, NULL), 0);
    cr_assert_gt(gen_id_created_s(&a), 1700000000);
}

Test(layout, gen_id_new_after_sorts_before_its_predecessor)
{
    struct gen_id prev, g;
    struct timespec now = {.tv_sec = 1701243240, .tv_nsec = 5000000};
    for (int i = 0; i < 200; i++) { /* same millisecond: random order without the bump */
        cr_assert_eq(gen_id_new(&now, &prev, NULL), 0);
        cr_assert_eq(gen_id_new_after(&now, &prev, &g, NULL), 0);
        cr_assert_lt(gen_id_cmp(&g, &prev), 0, "newer first");
        cr_assert_eq(gen_id_created_s(&g), 1701243240);
    }
    struct timespec earlier = {.tv_sec = 1701243000, .tv_nsec = 0}; /* clock went back */
    cr_assert_eq(gen_id_new_after(&earlier, &prev, &g, NULL), 0);
    cr_assert_lt(gen_id_cmp(&g, &prev), 0, "newer first");
    struct timespec later = {.tv_sec = 1701243241, .tv_nsec = 0}; /* the usual case */
    cr_assert_eq(gen_id_new_after(&later, &prev, &g, NULL), 0);
    cr_assert_eq(gen_id_created_s(&g), 1701243241);
}

Test(layout, gen_id_parse_rejects_bad_strings)
{
    const char *bad[] = {"", "e4e46038-04e1-7b18-a1f4-d269ac2d19d",
                         "E4E46038-04E1-7B18-A1F4-D269AC2D19DD",
                         "e4e46038-04e1-7b18-a1f4-d269ac2d19dx",
                         "e4e4603804e1-7b18-a1f4-d269ac2d19dd0",
                         "e4e46038-04e1-7b18-a1f4-d269ac2d19dd0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        cr_assert_not(gen_id_valid(bad[i], strlen(bad[i])), "%s", bad[i]);
    struct err err = {0};
    cr_assert_eq(gen_id_parse("zz", 2, NULL, &err), EBADMSG);
    cr_assert_neq(err.msg[0], 0);
}

Test(layout, keys_match_the_spec)
{
    struct gen_id g = parse_ok("e4e46038-04e1-7b18-a1f4-d269ac2d19dd");
    char k[LAYOUT_KEY_MAX];
    const char *p = "ns-mydb:default-e4e46038-04e1-7b18-a1f4-d269ac2d19dd/";
    char want[LAYOUT_KEY_MAX];

#define KEY_IS(call, suffix)                                                                       \
    do {                                                                                           \
        cr_assert_eq(call, 0);                                                                     \
        snprintf(want, sizeof(want), "%s%s", p, suffix);                                           \
        cr_assert_str_eq(k, want);                                                                 \
    } while (0)
    KEY_IS(layout_key_gen_prefix("ns-mydb:default", &g, k), "");
    KEY_IS(layout_key_snapshot("ns-mydb:default", &g, COMP_ZSTD, k), "db.zstd");
    KEY_IS(layout_key_snapshot("ns-mydb:default", &g, COMP_GZIP, k), "db.gz");
    KEY_IS(layout_key_snapshot("ns-mydb:default", &g, COMP_RAW, k), "db.raw");
    KEY_IS(layout_key_snapshot_legacy("ns-mydb:default", &g, k), "db.db");
    KEY_IS(layout_key_meta("ns-mydb:default", &g, k), ".meta");
    KEY_IS(layout_key_dep("ns-mydb:default", &g, k), ".dep");
    KEY_IS(layout_key_changecounter("ns-mydb:default", &g, k), ".changecounter");
    KEY_IS(layout_key_batch("ns-mydb:default", &g, 1, 37, 1701243250, COMP_ZSTD, k),
           "000000000001-000000000037-1701243250.zstd");
    KEY_IS(layout_key_batch("ns-mydb:default", &g, 38, 4294967295u, 0, COMP_GZIP, k),
           "000000000038-004294967295-0.gz");
    cr_assert_eq(layout_key_tombstone("ns-mydb:default", k), 0);
    cr_assert_str_eq(k, "ns-mydb:default.tombstone");
    cr_assert_eq(layout_key_meta("a/b", &g, k), EINVAL);
    cr_assert_eq(layout_key_meta("", &g, k), EINVAL);
    cr_assert_eq(layout_key_batch("x", &g, 0, 1, 1, COMP_RAW, k), EINVAL);
    cr_assert_eq(layout_key_batch("x", &g, 5, 4, 1, COMP_RAW, k), EINVAL);
}

Test(layout, batch_names_new_old_and_garbage)
{
    struct batch_name b;

    cr_assert_eq(layout_batch_parse("db-e4e46038-04e1-7b18-a1f4-d269ac2d19dd/"
                                    "000000000001-000000000037-1701243250.zstd",
                                    &b),
                 0);
    cr_assert(b.first == 1 && b.last == 37 && b.ts == 1701243250 && b.has_ts);
    cr_assert_eq(b.comp, COMP_ZSTD);
    cr_assert_eq(layout_batch_parse("000000000038-000000000040-1701243265.gz", &b), 0);
    cr_assert(b.first == 38 && b.last == 40 && b.comp == COMP_GZIP);
    cr_assert_eq(layout_batch_parse("1-1-0.raw", &b), 0);
    cr_assert(b.first == 1 && b.last == 1 && b.ts == 0 && b.has_ts && b.comp == COMP_RAW);
    cr_assert_eq(layout_batch_parse("000000000001-000000000010.gz", &b), 0);
    cr_assert(b.first == 1 && b.last == 10 && !b.has_ts && b.comp == COMP_GZIP);
    cr_assert_eq(layout_batch_parse("000000000001-000000000010.raw", &b), 0);
    cr_assert_eq(b.comp, COMP_RAW);
    cr_assert_eq(layout_batch_parse("000000000011-000000000020", &b), 0);
    cr_assert(b.first == 11 && b.last == 20 && !b.has_ts && b.comp == COMP_AUTO);
    cr_assert_eq(layout_batch_parse("4294967295-4294967295-18446744073709551615.zstd", &b), 0);
    cr_assert_eq(b.ts, UINT64_MAX);

    const char *bad[] = {".meta", ".dep", ".changecounter", "db.zstd", "db.gz", "db.raw",
                         "db.db", "", "-", "1-", "-1", "1-2-", "1-2-3", "1-2-3.xz", "0-5-1.raw",
                         "5-4-1.raw", "4294967296-4294967296-1.raw", "1-2-3-4.raw",
                         "1-2-18446744073709551616.raw", "a-b-c.zstd", "1 -2-3.raw",
                         "+1-2-3.raw", "1-2-3.zstd.gz", "1-2.lz4", "000001-000002-17x.zstd"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        cr_assert_eq(layout_batch_parse(bad[i], &b), EBADMSG, "accepted '%s'", bad[i]);
}

Test(layout, snapshot_names)
{
    enum compression c;
    cr_assert_eq(layout_snapshot_parse("x/db.zstd", &c), 0);
    cr_assert_eq(c, COMP_ZSTD);
    cr_assert_eq(layout_snapshot_parse("db.gz", &c), 0);
    cr_assert_eq(c, COMP_GZIP);
    cr_assert_eq(layout_snapshot_parse("db.raw", &c), 0);
    cr_assert_eq(c, COMP_RAW);
    cr_assert_eq(layout_snapshot_parse("db.db", &c), 0);
    cr_assert_eq(c, COMP_RAW);
    cr_assert_eq(layout_snapshot_parse("db.xz", &c), EBADMSG);
    cr_assert_eq(layout_snapshot_parse(".meta", &c), EBADMSG);
}

Test(layout, meta_encoding_is_byte_exact)
{
    struct gen_meta m = {.page_size = 4096, .cksum1 = 0x511609D1, .cksum2 = 0x6560A09D}, back;
    uint8_t b[LAYOUT_META_BYTES];
    const uint8_t want[] = {0, 0, 0x10, 0, 0x51, 0x16, 0x09, 0xd1, 0x65, 0x60, 0xa0, 0x9d};
    struct err err = {0};

    layout_meta_encode(&m, b);
    cr_assert_arr_eq(b, want, sizeof(want));
    cr_assert_eq(layout_meta_decode(b, 12, &back, &err), 0);
    cr_assert(back.page_size == 4096 && back.cksum1 == 0x511609D1 && back.cksum2 == 0x6560A09D);
    cr_assert_eq(layout_meta_decode(b, 11, &back, &err), EBADMSG);
    cr_assert(strstr(err.msg, "11 bytes"), "%s", err.msg);
    cr_assert_eq(layout_meta_decode(b, 8, &back, NULL), EBADMSG); /* pre-2023 u64 form? no */
    uint8_t b13[13] = {0};
    cr_assert_eq(layout_meta_decode(b13, 13, &back, NULL), EBADMSG);
}

Test(layout, dep_changecounter_tombstone_are_byte_exact)
{
    struct gen_id g = parse_ok("e4e4603e-e3fc-745f-b476-c367d6a37a99"), back;
    uint8_t d[16];
    const uint8_t want_dep[16] = {0xe4, 0xe4, 0x60, 0x3e, 0xe3, 0xfc, 0x74, 0x5f,
                                  0xb4, 0x76, 0xc3, 0x67, 0xd6, 0xa3, 0x7a, 0x99};
    layout_dep_encode(&g, d);
    cr_assert_arr_eq(d, want_dep, 16);
    cr_assert_eq(layout_dep_decode(d, 16, &back, NULL), 0);
    cr_assert(gen_id_eq(&g, &back));
    cr_assert_eq(layout_dep_decode(d, 15, &back, NULL), EBADMSG);
    cr_assert_eq(layout_dep_decode(d, 36, &back, NULL), EBADMSG);

    uint8_t c[4];
    uint32_t cc;
    layout_changecounter_encode(51, c);
    const uint8_t want_cc[4] = {0, 0, 0, 51};
    cr_assert_arr_eq(c, want_cc, 4);
    cr_assert_eq(layout_changecounter_decode(c, 4, &cc, NULL), 0);
    cr_assert_eq(cc, 51);
    cr_assert_eq(layout_changecounter_decode(c, 3, &cc, NULL), EBADMSG);

    uint8_t t[8];
    int64_t ts;
    layout_tombstone_encode(LAYOUT_TOMBSTONE_MAX, t);
    const uint8_t want_t[8] = {0, 0, 0x07, 0x77, 0x9b, 0xeb, 0x9e, 0xff};
    cr_assert_arr_eq(t, want_t, 8, "8210298412799 = 0x7779BEB9EFF");
    cr_assert_eq(layout_tombstone_decode(t, 8, &ts, NULL), 0);
    cr_assert_eq(ts, LAYOUT_TOMBSTONE_MAX);
    cr_assert_eq(layout_tombstone_decode(t, 4, &ts, NULL), EBADMSG);

    struct gen_id e = parse_ok("e4e46038-04e1-7b18-a1f4-d269ac2d19dd"); /* 2023-11-29T07:34:00 */
    cr_assert(layout_is_tombstoned(1701243240, &e));
    cr_assert(layout_is_tombstoned(1701243241, &e));
    cr_assert_not(layout_is_tombstoned(1701243239, &e));
}

Test(layout, db_name_escape_round_trips)
{
    const char *paths[] = {"app.db", "dir/sub/app.db", "100%/x", "a b/c\td", "ns-x:default",
                           "%2F", "ünï/cødé.db", "a\x7f"};
    const char *names[] = {"app.db", "dir%2Fsub%2Fapp.db", "100%25%2Fx", "a b%2Fc%09d",
                           "ns-x:default", "%252F", "ünï%2Fcødé.db", "a%7F"};
    char n[512], p[512];
    struct err err = {0};

    for (size_t i = 0; i < sizeof(paths) / sizeof(*paths); i++) {
        cr_assert_eq(layout_db_name_from_path(paths[i], n, sizeof(n), &err), 0, "%s", err.msg);
        cr_assert_str_eq(n, names[i]);
        cr_assert_null(strchr(n, '/'));
        cr_assert_eq(layout_path_from_db_name(n, p, sizeof(p), &err), 0, "%s", err.msg);
        cr_assert_str_eq(p, paths[i]);
    }
}

Test(layout, db_name_escape_rejects_unsafe_names)
{
    const char *bad_paths[] = {"", "/abs", "a/../b", "..", ".", "a//b", "a/", "./a"};
    const char *bad_names[] = {"", "a/b", "%2E%2E", "..", "%2Fetc", "a%2F..%2Fb", "a%2",
                               "a%zz", "a%2f", "a%41", "%00", "x%2F", "a\tb", ".",
                               "a%2F%2Fb"};
    char out[512];

    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(*bad_paths); i++)
        cr_assert_neq(layout_db_name_from_path(bad_paths[i], out, sizeof(out), NULL), 0, "%s",
                      bad_paths[i]);
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(*bad_names); i++)
        cr_assert_neq(layout_path_from_db_name(bad_names[i], out, sizeof(out), NULL), 0, "%s",
                      bad_names[i]);
    cr_assert_eq(layout_db_name_from_path("abcdef", out, 4, NULL), ENAMETOOLONG);
}

Test(layout, utc_parse_and_format)
{
    int64_t t;
    char s[32];
    cr_assert_eq(layout_parse_utc("2023-11-29T07:34:00", &t, NULL), 0);
    cr_assert_eq(t, 1701243240);
    cr_assert_eq(layout_parse_utc("2023-11-29 07:34:00", &t, NULL), 0);
    cr_assert_eq(t, 1701243240);
    cr_assert_eq(layout_parse_utc("2023-11-29T07:34:00.999Z", &t, NULL), 0);
    cr_assert_eq(t, 1701243240);
    cr_assert_eq(layout_parse_utc("2023-11-29", &t, NULL), 0);
    cr_assert_eq(t, 1701216000);
    layout_format_utc(t, s, sizeof(s));
    cr_assert_str_eq(s, "2023-11-29T00:00:00Z");
    cr_assert_eq(layout_parse_utc("2023-11-29T07:34", &t, NULL), EINVAL);
    cr_assert_eq(layout_parse_utc("yesterday", &t, NULL), EINVAL);
    cr_assert_eq(layout_parse_utc("2023-13-01", &t, NULL), EINVAL);
}
