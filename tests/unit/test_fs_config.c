/* tests/unit/test_fs_config.c - option parsing (fs/config.c, compiled in here): defaults,
 * environment values, -o winning over them, validation messages, FUSE options passed on. */
#include "../../fs/config.c"

#include <criterion/criterion.h>
#include <unistd.h>

static const char *ENVS[] = {"LIBSQL_BOTTOMLESS_ENDPOINT", "LIBSQL_BOTTOMLESS_BUCKET",
                             "AWS_REGION", "LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION",
                             "LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS",
                             "LIBSQL_BOTTOMLESS_BATCH_MAX_FRAMES", "LIBSQL_BOTTOMLESS_COMPRESSION"};

static void clean_env(void)
{
    for (size_t i = 0; i < sizeof(ENVS) / sizeof(ENVS[0]); i++)
        unsetenv(ENVS[i]);
}

static int parse(struct fs_config *cfg, struct err *err, int argc, const char **argv)
{
    bool exit_now = false;
    memset(err, 0, sizeof(*err));
    int rc = fs_config_parse(cfg, argc, (char **)argv, &exit_now, err);
    cr_expect_not(exit_now);
    return rc;
}

TestSuite(fs_config, .init = clean_env);

Test(fs_config, defaults)
{
    struct fs_config cfg;
    struct err err;
    const char *argv[] = {"bottomlessfs", "/usr", "/tmp"};
    cr_assert_eq(parse(&cfg, &err, 3, argv), 0, "%s", err.msg);
    cr_expect_str_eq(cfg.backing_dir, "/usr");
    cr_expect_str_eq(cfg.mountpoint, "/tmp");
    cr_expect_eq(cfg.batch_interval_ms, 1000);
    cr_expect_eq(cfg.batch_max_frames, 10000);
    cr_expect_str_eq(cfg.compression, "zstd");
    cr_expect_not(cfg.durable);
    cr_expect(cfg.noxattr); /* the default since issue 6: -o xattr turns them on */
    cr_expect_not(cfg.writeback);
    cr_expect_not(cfg.foreground);
    cr_expect_null(cfg.endpoint);
    cr_expect_eq(cfg.flush_timeout_ms, 60000);
    cr_expect_eq(cfg.lease_ttl_ms, 30000);
    bool has_dp = false;
    for (int i = 0; i < cfg.fuse_argc; i++)
        has_dp |= strstr(cfg.fuse_argv[i], "default_permissions") != NULL;
    cr_expect(has_dp);
    fs_config_free(&cfg);
}

Test(fs_config, environment_and_o_wins)
{
    struct fs_config cfg;
    struct err err;
    setenv("LIBSQL_BOTTOMLESS_ENDPOINT", "http://127.0.0.1:9000", 1);
    setenv("LIBSQL_BOTTOMLESS_BUCKET", "envbucket", 1);
    setenv("LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS", "2.5", 1);
    setenv("LIBSQL_BOTTOMLESS_BATCH_MAX_FRAMES", "77", 1);
    setenv("LIBSQL_BOTTOMLESS_COMPRESSION", "gzip", 1);
    setenv("LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION", "eu-west-1", 1);
    const char *argv[] = {"bottomlessfs", "-o", "bucket=optbucket,compression=none", "/usr",
                          "/tmp"};
    cr_assert_eq(parse(&cfg, &err, 5, argv), 0, "%s", err.msg);
    cr_expect_str_eq(cfg.endpoint, "http://127.0.0.1:9000");
    cr_expect_str_eq(cfg.bucket, "optbucket");
    cr_expect_str_eq(cfg.compression, "none");
    cr_expect_eq(cfg.batch_interval_ms, 2500);
    cr_expect_eq(cfg.batch_max_frames, 77);
    cr_expect_str_eq(cfg.region, "eu-west-1");
    fs_config_free(&cfg);
    setenv("AWS_REGION", "us-west-2", 1);
    const char *argv2[] = {"bottomlessfs", "/usr", "/tmp"};
    cr_assert_eq(parse(&cfg, &err, 3, argv2), 0, "%s", err.msg);
    cr_expect_str_eq(cfg.region, "us-west-2");
    fs_config_free(&cfg);
}

Test(fs_config, our_flags_and_fuse_passthrough)
{
    struct fs_config cfg;
    struct err err;
    const char *argv[] = {"bottomlessfs", "/usr", "-o", "durable,writeback=250,allow_other,noatime",
                          "-f",           "/tmp", "-o",
                          "flush_timeout=5,list_ttl=0.5,noxattr,spin_us=40,lease_ttl=4.5"};
    cr_assert_eq(parse(&cfg, &err, 8, argv), 0, "%s", err.msg);
    cr_expect(cfg.durable);
    cr_expect(cfg.writeback);
    cr_expect_eq(cfg.writeback_ms, 250);
    cr_expect(cfg.allow_other);
    cr_expect(cfg.foreground);
    cr_expect_eq(cfg.flush_timeout_ms, 5000);
    cr_expect_eq(cfg.list_ttl_ms, 500);
    cr_expect(cfg.noxattr);
    cr_expect_eq(cfg.spin_us, 40);
    cr_expect_eq(cfg.lease_ttl_ms, 4500);
    bool has_noatime = false, has_allow = false;
    for (int i = 0; i < cfg.fuse_argc; i++) {
        has_noatime |= strcmp(cfg.fuse_argv[i], "noatime") == 0;
        has_allow |= strcmp(cfg.fuse_argv[i], "allow_other") == 0;
    }
    cr_expect(has_noatime && has_allow);
    fs_config_free(&cfg);
    const char *argv2[] = {"bottomlessfs", "-o", "writeback", "/usr", "/tmp"};
    cr_assert_eq(parse(&cfg, &err, 5, argv2), 0, "%s", err.msg);
    cr_expect_eq(cfg.writeback_ms, FS_DEFAULT_WRITEBACK_MS);
    fs_config_free(&cfg);
}

Test(fs_config, wal_cache_warmer_is_on_unless_nowalcache)
{
    struct fs_config cfg;
    struct err err;
    const char *def[] = {"bottomlessfs", "/usr", "/tmp"};
    cr_assert_eq(parse(&cfg, &err, 3, def), 0, "%s", err.msg);
    cr_expect_not(cfg.nowalcache);
    fs_config_free(&cfg);
    const char *off[] = {"bottomlessfs", "/usr", "/tmp", "-o", "nowalcache"};
    cr_assert_eq(parse(&cfg, &err, 5, off), 0, "%s", err.msg);
    cr_expect(cfg.nowalcache);
    fs_config_free(&cfg);
}

Test(fs_config, xattr_turns_extended_attributes_on)
{
    struct fs_config cfg;
    struct err err;
    const char *on[] = {"bottomlessfs", "/usr", "/tmp", "-o", "xattr"};
    cr_assert_eq(parse(&cfg, &err, 5, on), 0, "%s", err.msg);
    cr_expect_not(cfg.noxattr);
    fs_config_free(&cfg);
    const char *both[] = {"bottomlessfs", "/usr", "/tmp", "-o", "xattr,noxattr"};
    cr_assert_eq(parse(&cfg, &err, 5, both), 0, "%s", err.msg);
    cr_expect(cfg.noxattr); /* noxattr wins */
    fs_config_free(&cfg);
}

Test(fs_config, errors_name_the_problem)
{
    struct fs_config cfg;
    struct err err;
    const char *a1[] = {"bottomlessfs", "/"};
    cr_expect_eq(parse(&cfg, &err, 2, a1), EINVAL);
    cr_expect(strstr(err.msg, "BACKING_DIR and MOUNTPOINT") != NULL, "%s", err.msg);
    const char *a2[] = {"bottomlessfs", "/nonexistent-dir-xyz", "/tmp"};
    cr_expect_eq(parse(&cfg, &err, 3, a2), ENOENT);
    cr_expect(strstr(err.msg, "no such directory") != NULL, "%s", err.msg);
    const char *a3[] = {"bottomlessfs", "-o", "compression=lz4", "/usr", "/tmp"};
    cr_expect_eq(parse(&cfg, &err, 5, a3), EINVAL);
    cr_expect(strstr(err.msg, "compression=lz4") != NULL, "%s", err.msg);
    const char *a4[] = {"bottomlessfs", "-o", "batch_max_frames=12x", "/usr", "/tmp"};
    cr_expect_eq(parse(&cfg, &err, 5, a4), EINVAL);
    cr_expect(strstr(err.msg, "batch_max_frames=12x") != NULL, "%s", err.msg);
    const char *a6[] = {"bottomlessfs", "-o", "lease_ttl=2", "/usr", "/tmp"};
    cr_expect_eq(parse(&cfg, &err, 5, a6), EINVAL);
    cr_expect(strstr(err.msg, "lease_ttl=2: at least 3 seconds") != NULL, "%s", err.msg);
    setenv("LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS", "soon", 1);
    const char *a5[] = {"bottomlessfs", "/usr", "/tmp"};
    cr_expect_eq(parse(&cfg, &err, 3, a5), EINVAL);
    cr_expect(strstr(err.msg, "batch_interval=soon") != NULL, "%s", err.msg);
}

static void expect_refused(const char *backing, const char *mnt, const char *why)
{
    struct fs_config cfg;
    struct err err;
    const char *argv[] = {"bottomlessfs", backing, mnt};
    cr_expect_eq(parse(&cfg, &err, 3, argv), EINVAL, "%s %s", backing, mnt);
    cr_expect(strstr(err.msg, why) != NULL, "%s", err.msg);
}

/* A mount over the backing directory, or nested either way, hangs the daemon in its first
 * mkdir (its own calls come back to it); refused up front, also through a symlinked alias. */
Test(fs_config, backing_and_mountpoint_must_be_apart)
{
    struct fs_config cfg;
    struct err err;
    char base[] = "/tmp/bfs-cfg-XXXXXX", a[64], ab[64], inner[64], alias[64], sib[64];
    cr_assert_not_null(mkdtemp(base));
    snprintf(a, sizeof(a), "%s/a", base);
    snprintf(inner, sizeof(inner), "%s/a/in", base);
    snprintf(ab, sizeof(ab), "%s/ab", base);
    snprintf(sib, sizeof(sib), "%s/ab/x", base);
    snprintf(alias, sizeof(alias), "%s/alias", base);
    cr_assert_eq(mkdir(a, 0700), 0);
    cr_assert_eq(mkdir(inner, 0700), 0);
    cr_assert_eq(mkdir(ab, 0700), 0);
    cr_assert_eq(mkdir(sib, 0700), 0);
    cr_assert_eq(symlink(a, alias), 0);

    expect_refused(a, a, "is the backing directory");
    expect_refused(a, alias, "is the backing directory");
    expect_refused(a, inner, "inside the backing directory");
    expect_refused(inner, alias, "inside the mountpoint");
    /* "ab" shares a prefix with "a" but is not below it */
    const char *apart[] = {"bottomlessfs", a, ab};
    cr_expect_eq(parse(&cfg, &err, 3, apart), 0, "%s", err.msg);
    fs_config_free(&cfg);
    const char *apart2[] = {"bottomlessfs", sib, inner};
    cr_expect_eq(parse(&cfg, &err, 3, apart2), 0, "%s", err.msg);
    fs_config_free(&cfg);

    unlink(alias);
    rmdir(sib);
    rmdir(ab);
    rmdir(inner);
    rmdir(a);
    rmdir(base);
}
