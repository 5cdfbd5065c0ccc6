/* tests/unit/test_s3_config.c - credential, region, endpoint and bucket resolution order of
 * s3_conf_resolve(). Each criterion test runs in its own process, so setenv() is private. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s3/s3.h"

static char home[256];

static void clear_env(void)
{
    static const char *vars[] = {"LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID",
                                 "LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY",
                                 "LIBSQL_BOTTOMLESS_AWS_SESSION_TOKEN",
                                 "LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION",
                                 "AWS_ACCESS_KEY_ID",
                                 "AWS_SECRET_ACCESS_KEY",
                                 "AWS_SESSION_TOKEN",
                                 "AWS_REGION",
                                 "AWS_DEFAULT_REGION",
                                 "AWS_PROFILE",
                                 "AWS_SHARED_CREDENTIALS_FILE",
                                 "AWS_CONFIG_FILE",
                                 "LIBSQL_BOTTOMLESS_ENDPOINT",
                                 "LIBSQL_BOTTOMLESS_BUCKET"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/.aws", home);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/.aws/%s", home, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    clear_env();
    snprintf(home, sizeof home, "/tmp/bfs-test-s3conf-%d", (int)getpid());
    mkdir(home, 0700);
    setenv("HOME", home, 1);
}

static void teardown(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s/.aws/credentials", home);
    unlink(cmd);
    snprintf(cmd, sizeof cmd, "%s/.aws/config", home);
    unlink(cmd);
    snprintf(cmd, sizeof cmd, "%s/.aws", home);
    rmdir(cmd);
    rmdir(home);
}

static void resolve(struct s3_conf *c, int want_rc)
{
    struct err e = {0};
    s3_conf_init(c);
    cr_assert_eq(s3_conf_resolve(c, &e), want_rc, "%s", e.msg);
}

TestSuite(s3_config, .init = setup, .fini = teardown);

Test(s3_config, defaults)
{
    struct s3_conf c;
    s3_conf_init(&c);
    cr_expect_eq(c.max_attempts, 6);
    cr_expect_eq(c.part_size, 8u << 20);
    cr_expect_eq(c.multipart_threshold, 16u << 20);
    cr_expect_eq(c.parallel, 4);
    cr_expect_null(c.endpoint);
    setenv("AWS_ACCESS_KEY_ID", "id", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "sec", 1);
    resolve(&c, 0);
    cr_expect_str_eq(c.endpoint, S3_DEFAULT_ENDPOINT);
    cr_expect_str_eq(c.bucket, S3_DEFAULT_BUCKET);
    cr_expect_str_eq(c.region, S3_DEFAULT_REGION);
    cr_expect_null(c.session_token);
    s3_conf_free(&c);
}

Test(s3_config, libsql_env_wins_over_aws_env_and_files)
{
    setenv("LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID", "test:tester", 1);
    setenv("LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY", "testing", 1);
    setenv("LIBSQL_BOTTOMLESS_AWS_SESSION_TOKEN", "tok1", 1);
    setenv("LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION", "eu-west-1", 1);
    setenv("AWS_ACCESS_KEY_ID", "aws-id", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "aws-sec", 1);
    setenv("AWS_SESSION_TOKEN", "tok2", 1);
    setenv("AWS_REGION", "us-west-2", 1);
    setenv("LIBSQL_BOTTOMLESS_ENDPOINT", "http://127.0.0.1:9", 1);
    setenv("LIBSQL_BOTTOMLESS_BUCKET", "bkt", 1);
    write_file("credentials", "[default]\naws_access_key_id=file-id\naws_secret_access_key=x\n");
    struct s3_conf c;
    resolve(&c, 0);
    cr_expect_str_eq(c.access_key_id, "test:tester");
    cr_expect_str_eq(c.secret_access_key, "testing");
    cr_expect_str_eq(c.session_token, "tok1");
    cr_expect_str_eq(c.region, "eu-west-1");
    cr_expect_str_eq(c.endpoint, "http://127.0.0.1:9");
    cr_expect_str_eq(c.bucket, "bkt");
    s3_conf_free(&c);
}

Test(s3_config, aws_env_second_and_regions_in_order)
{
    setenv("LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID", "half-set-is-ignored", 1);
    setenv("AWS_ACCESS_KEY_ID", "aws-id", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "aws-sec", 1);
    setenv("AWS_REGION", "us-west-2", 1);
    setenv("AWS_DEFAULT_REGION", "ap-south-1", 1);
    struct s3_conf c;
    resolve(&c, 0);
    cr_expect_str_eq(c.access_key_id, "aws-id");
    cr_expect_str_eq(c.secret_access_key, "aws-sec");
    cr_expect_str_eq(c.region, "us-west-2");
    s3_conf_free(&c);
    unsetenv("AWS_REGION");
    resolve(&c, 0);
    cr_expect_str_eq(c.region, "ap-south-1");
    s3_conf_free(&c);
}

Test(s3_config, credentials_file_default_profile_with_colon_key)
{
    write_file("credentials", "# comment\n[other]\naws_access_key_id = nope\n"
                              "aws_secret_access_key = nope\n\n[default]\n"
                              "aws_access_key_id = test:tester\r\n"
                              "aws_secret_access_key = a=b/c+d\n"
                              "aws_session_token=tok\n");
    write_file("config", "[default]\nregion = eu-central-1\n");
    struct s3_conf c;
    resolve(&c, 0);
    cr_expect_str_eq(c.access_key_id, "test:tester");
    cr_expect_str_eq(c.secret_access_key, "a=b/c+d");
    cr_expect_str_eq(c.session_token, "tok");
    cr_expect_str_eq(c.region, "eu-central-1");
    s3_conf_free(&c);
}

Test(s3_config, aws_profile_selects_sections)
{
    write_file("credentials", "[default]\naws_access_key_id=d\naws_secret_access_key=d\n"
                              "[work]\naws_access_key_id=w-id\naws_secret_access_key=w-sec\n");
    write_file("config", "[default]\nregion=us-east-2\n[work]\nregion=wrong-style\n"
                         "[profile work]\nregion=sa-east-1\n");
    setenv("AWS_PROFILE", "work", 1);
    struct s3_conf c;
    resolve(&c, 0);
    cr_expect_str_eq(c.access_key_id, "w-id");
    cr_expect_str_eq(c.secret_access_key, "w-sec");
    cr_expect_str_eq(c.region, "sa-east-1");
    s3_conf_free(&c);
}

Test(s3_config, config_file_may_hold_credentials_and_paths_override)
{
    char path[512];
    snprintf(path, sizeof path, "%s/.aws/alt-config", home);
    write_file("alt-config", "[profile p]\naws_access_key_id=cfg-id\naws_secret_access_key=cs\n");
    setenv("AWS_CONFIG_FILE", path, 1);
    setenv("AWS_PROFILE", "p", 1);
    struct s3_conf c;
    resolve(&c, 0);
    cr_expect_str_eq(c.access_key_id, "cfg-id");
    cr_expect_str_eq(c.region, S3_DEFAULT_REGION);
    s3_conf_free(&c);
    unlink(path);
}

Test(s3_config, caller_values_are_kept)
{
    setenv("AWS_ACCESS_KEY_ID", "env-id", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "env-sec", 1);
    setenv("LIBSQL_BOTTOMLESS_BUCKET", "env-bucket", 1);
    struct s3_conf c;
    struct err e = {0};
    s3_conf_init(&c);
    c.bucket = strdup("flag-bucket");
    c.access_key_id = strdup("flag-id");
    c.secret_access_key = strdup("flag-sec");
    cr_assert_eq(s3_conf_resolve(&c, &e), 0, "%s", e.msg);
    cr_expect_str_eq(c.bucket, "flag-bucket");
    cr_expect_str_eq(c.access_key_id, "flag-id");
    cr_expect_str_eq(c.secret_access_key, "flag-sec");
    struct s3_conf copy;
    s3_conf_copy(&copy, &c);
    cr_expect_neq(copy.bucket, c.bucket);
    cr_expect_str_eq(copy.bucket, "flag-bucket");
    s3_conf_free(&c);
    cr_expect_null(c.secret_access_key);
    s3_conf_free(&copy);
}

Test(s3_config, no_credentials_is_einval_naming_variables)
{
    struct s3_conf c;
    struct err e = {0};
    s3_conf_init(&c);
    cr_expect_eq(s3_conf_resolve(&c, &e), EINVAL);
    cr_expect(strstr(e.msg, "LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID") != NULL, "%s", e.msg);
    cr_expect(strstr(e.msg, "AWS_SECRET_ACCESS_KEY") != NULL, "%s", e.msg);
    s3_conf_free(&c);
}
