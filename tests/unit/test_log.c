/* tests/unit/test_log.c - common/log: level names and filtering, the line format, and the
 * per-call-site rate limit (LOG_*_RL) with its suppressed=N count. stderr is redirected to a
 * temporary file in each test (criterion runs every test in its own process). */
#include "common/log.h"

#include <criterion/criterion.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char capture_path[64];

static void capture_start(void)
{
    snprintf(capture_path, sizeof capture_path, "/tmp/test_log.XXXXXX");
    int fd = mkstemp(capture_path);
    cr_assert(fd >= 0);
    cr_assert(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
    close(fd);
}

/* Everything written to stderr since capture_start(); caller frees. */
static char *capture_read(void)
{
    FILE *f = fopen(capture_path, "r");
    cr_assert_not_null(f);
    char *text = calloc(1, 1 << 16);
    size_t n = fread(text, 1, (1 << 16) - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(capture_path);
    return text;
}

static int count_lines(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

Test(log, level_names_parse_and_unknown_is_rejected)
{
    cr_expect_eq(log_level_parse("error"), LOG_LEVEL_ERROR);
    cr_expect_eq(log_level_parse("warn"), LOG_LEVEL_WARN);
    cr_expect_eq(log_level_parse("info"), LOG_LEVEL_INFO);
    cr_expect_eq(log_level_parse("debug"), LOG_LEVEL_DEBUG);
    cr_expect_eq(log_level_parse("trace"), LOG_LEVEL_TRACE);
    cr_expect_eq(log_level_parse("INFO"), -1);
    cr_expect_eq(log_level_parse("verbose"), -1);
    cr_expect_eq(log_level_parse(""), -1);
}

Test(log, lines_have_utc_time_level_and_message_and_respect_the_level)
{
    capture_start();
    log_init(LOG_LEVEL_WARN, false, "test");
    cr_expect(log_enabled(LOG_LEVEL_ERROR));
    cr_expect(log_enabled(LOG_LEVEL_WARN));
    cr_expect_not(log_enabled(LOG_LEVEL_INFO));
    LOG_INFO("test: hidden db=%s", "a.db");
    LOG_WARN("test: shown db=%s attempt=%d", "a.db", 3);
    LOG_ERR("test: two\nlines");
    char *out = capture_read();
    regex_t re;
    cr_assert_eq(regcomp(&re,
                         "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                         "warn  test: shown db=a\\.db attempt=3\n"
                         "[0-9T:.-]+Z error test: two lines\n$",
                         REG_EXTENDED),
                 0);
    cr_expect_eq(regexec(&re, out, 0, NULL, 0), 0, "output was:\n%s", out);
    regfree(&re);
    free(out);
}

Test(log, rate_limited_site_prints_once_per_interval_and_counts_the_rest)
{
    capture_start();
    log_init(LOG_LEVEL_INFO, false, "test");
    for (int i = 0; i < 50; i++)
        LOG_WARN_RL(200, "s3: retry op=PUT attempt=%d", i);
    char *out = capture_read();
    cr_expect_eq(count_lines(out, "s3: retry"), 1, "output was:\n%s", out);
    cr_expect_not_null(strstr(out, "attempt=0\n"), "the first one is printed, without a count");
    free(out);

    capture_start();
    LOG_WARN_RL(200, "s3: retry op=GET attempt=%d", 1); /* another call site: its own limit */
    LOG_WARN_RL(200, "s3: retry op=HEAD attempt=%d", 1);
    out = capture_read();
    cr_expect_eq(count_lines(out, "s3: retry"), 2, "output was:\n%s", out);
    free(out);
}

static void rl_site(int i)
{
    LOG_WARN_RL(200, "upload: failing attempt=%d", i); /* one call site for every i */
}

Test(log, rate_limited_line_after_the_interval_says_how_many_were_suppressed)
{
    capture_start();
    log_init(LOG_LEVEL_INFO, false, "test");
    for (int i = 0; i < 10; i++)
        rl_site(i);
    sleep_ms(250); /* the scenario: the interval passes */
    rl_site(10);
    rl_site(11);
    char *out = capture_read();
    cr_expect_eq(count_lines(out, "upload: failing"), 2, "output was:\n%s", out);
    cr_expect_not_null(strstr(out, "upload: failing attempt=0\n"), "output was:\n%s", out);
    cr_expect_not_null(strstr(out, "upload: failing attempt=10 suppressed=9\n"), "output was:\n%s",
                       out);
    free(out);
}

Test(log, rate_limit_below_the_level_costs_nothing_and_counts_nothing)
{
    capture_start();
    log_init(LOG_LEVEL_ERROR, false, "test");
    for (int i = 0; i < 5; i++)
        rl_site(i);
    log_init(LOG_LEVEL_INFO, false, "test");
    rl_site(5);
    char *out = capture_read();
    cr_expect_not_null(strstr(out, "upload: failing attempt=5\n"), "output was:\n%s", out);
    free(out);
}

Test(log, log_ratelimited_with_caller_state)
{
    uint64_t last = 0;
    unsigned suppressed = 0;
    cr_expect(log_ratelimited(&last, &suppressed, 1000));
    cr_expect_not(log_ratelimited(&last, &suppressed, 1000));
    cr_expect_not(log_ratelimited(&last, &suppressed, 1000));
    cr_expect_eq(suppressed, 2);
    cr_expect(log_ratelimited(&last, &suppressed, 0));
}
