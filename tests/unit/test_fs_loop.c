/* tests/unit/test_fs_loop.c - the session loop's request counters as the stats file shows them. */
#include "../../fs/loop.c" /* fs/ objects are not in a library */

#include <criterion/criterion.h>
#include <string.h>

Test(fs_loop, stats_render_names_opcodes_and_skips_zeros)
{
    struct fs_loop_stats s;
    struct buf b;

    memset(&s, 0, sizeof(s));
    s.by_opcode[FUSE_WRITE] = 40000;
    s.by_opcode[FUSE_GETXATTR] = 3;
    s.by_opcode[63] = 1; /* unnamed opcode */
    s.other = 2;
    s.requests = 40006;
    s.spin_hits = 7;
    s.sleeps = 9;
    buf_init(&b, 1 << 16);
    cr_assert_eq(fs_loop_stats_render(&s, 25, &b), 0);
    cr_assert_eq(buf_append(&b, "", 1), 0);
    cr_expect_str_eq((const char *)b.data,
                     "{\"requests\":40006,\"spin_us\":25,\"spin_hits\":7,\"sleeps\":9,\"by_op\":"
                     "{\"WRITE\":40000,\"GETXATTR\":3,\"OP63\":1,\"OTHER\":2}}\n");
    buf_free(&b);
}

Test(fs_loop, stats_render_respects_the_buffer_cap)
{
    struct fs_loop_stats s;
    struct buf b;

    memset(&s, 0, sizeof(s));
    s.requests = 1;
    buf_init(&b, 8);
    cr_expect_neq(fs_loop_stats_render(&s, 0, &b), 0);
    buf_free(&b);
}
