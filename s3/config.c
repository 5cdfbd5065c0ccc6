/* s3/config.c - struct s3_conf: defaults, resolution from the environment and the AWS shared
 * files, deep copy and free (contract in s3.h). The only file in s3/ that reads getenv().
 *
 * Credentials come as a unit (key id + secret [+ token]) from the first source that has both:
 *   1. LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID / _SECRET_ACCESS_KEY / _SESSION_TOKEN
 *   2. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN
 *   3. the profile in ~/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE overrides the path),
 *   4. the profile in ~/.aws/config (AWS_CONFIG_FILE overrides; section "[profile NAME]" or
 *      "[default]"); profile = AWS_PROFILE or "default".
 * Region: LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION, AWS_REGION, AWS_DEFAULT_REGION, the profile's
 * region (config, then credentials), then S3_DEFAULT_REGION. */
#include "s3/s3.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONF_FILE_MAX (1u << 20)
#define CONF_LINE_MAX 4096

void s3_conf_init(struct s3_conf *c)
{
    memset(c, 0, sizeof *c);
    c->max_attempts = 6;
    c->backoff_base_ms = 100;
    c->backoff_max_ms = 5000;
    c->connect_timeout_ms = 5000;
    c->low_speed_timeout_s = 30;
    c->multipart_threshold = 16u << 20;
    c->part_size = 8u << 20;
    c->parallel = 4;
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : NULL;
}

static int dup_into(char **dst, const char *src)
{
    if (*dst != NULL || src == NULL)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : ENOMEM;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

struct profile_values {
    char *access_key_id, *secret, *token, *region;
};

static void profile_values_free(struct profile_values *v)
{
    if (v->secret)
        OPENSSL_cleanse(v->secret, strlen(v->secret));
    if (v->token)
        OPENSSL_cleanse(v->token, strlen(v->token));
    free(v->access_key_id);
    free(v->secret);
    free(v->token);
    free(v->region);
    memset(v, 0, sizeof *v);
}

/* Is "[...]" (already trimmed, brackets included) the section for profile? */
static bool section_matches(const char *line, const char *profile, bool config_style)
{
    char name[256];
    size_t n = strlen(line);
    if (n < 2 || n - 2 >= sizeof name)
        return false;
    memcpy(name, line + 1, n - 2);
    name[n - 2] = '\0';
    char *s = trim(name);
    if (config_style && strncmp(s, "profile ", 8) == 0)
        s = trim(s + 8);
    else if (config_style && strcmp(profile, "default") != 0)
        return false; /* config names other profiles "[profile NAME]" */
    return strcmp(s, profile) == 0;
}

static int take_value(struct profile_values *v, const char *key, const char *value)
{
    if (strcmp(key, "aws_access_key_id") == 0)
        return dup_into(&v->access_key_id, value);
    if (strcmp(key, "aws_secret_access_key") == 0)
        return dup_into(&v->secret, value);
    if (strcmp(key, "aws_session_token") == 0)
        return dup_into(&v->token, value);
    if (strcmp(key, "region") == 0)
        return dup_into(&v->region, value);
    return 0;
}

/* Reads the profile's keys from an INI file; a missing file is not an error. */
static int read_profile(const char *path, const char *profile, bool config_style,
                        struct profile_values *out)
{
    FILE *f = fopen(path, "re");
    char line[CONF_LINE_MAX];
    bool in_section = false;
    int rc = 0;
    if (f == NULL)
        return 0;
    while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
        char *s = trim(line);
        if (*s == '#' || *s == ';' || *s == '\0')
            continue;
        if (*s == '[') {
            in_section = section_matches(s, profile, config_style);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!in_section || eq == NULL)
            continue;
        *eq = '\0';
        rc = take_value(out, trim(s), trim(eq + 1));
    }
    OPENSSL_cleanse(line, sizeof line);
    fclose(f);
    return rc;
}

static int shared_file_path(char *out, size_t cap, const char *env, const char *name)
{
    const char *p = env_nonempty(env);
    const char *home = env_nonempty("HOME");
    if (p != NULL)
        return snprintf(out, cap, "%s", p) < (int)cap ? 0 : ENAMETOOLONG;
    if (home == NULL)
        return ENOENT;
    return snprintf(out, cap, "%s/.aws/%s", home, name) < (int)cap ? 0 : ENAMETOOLONG;
}

static int load_profiles(struct profile_values *creds, struct profile_values *config)
{
    const char *profile = env_nonempty("AWS_PROFILE");
    char path[4096];
    int rc = 0;
    if (profile == NULL)
        profile = "default";
    if (shared_file_path(path, sizeof path, "AWS_SHARED_CREDENTIALS_FILE", "credentials") == 0)
        rc = read_profile(path, profile, false, creds);
    if (rc == 0 && shared_file_path(path, sizeof path, "AWS_CONFIG_FILE", "config") == 0)
        rc = read_profile(path, profile, true, config);
    return rc;
}

/* Fills id/secret/token from the first source that has both id and secret. */
static int resolve_credentials(struct s3_conf *c, const struct profile_values *files,
                               size_t n_files)
{
    static const char *const env[][3] = {
        {"LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID", "LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY",
         "LIBSQL_BOTTOMLESS_AWS_SESSION_TOKEN"},
        {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"},
    };
    const char *id = NULL, *secret = NULL, *token = NULL;
    if (c->access_key_id != NULL && c->secret_access_key != NULL)
        return 0;
    for (size_t i = 0; i < 2 && secret == NULL; i++) {
        id = env_nonempty(env[i][0]);
        secret = env_nonempty(env[i][1]);
        token = env_nonempty(env[i][2]);
        if (id == NULL || secret == NULL)
            id = secret = token = NULL;
    }
    for (size_t i = 0; i < n_files && secret == NULL; i++) {
        if (files[i].access_key_id && files[i].secret) {
            id = files[i].access_key_id;
            secret = files[i].secret;
            token = files[i].token;
        }
    }
    int rc = dup_into(&c->access_key_id, id);
    if (rc == 0)
        rc = dup_into(&c->secret_access_key, secret);
    if (rc == 0 && c->session_token == NULL)
        rc = dup_into(&c->session_token, token);
    return rc;
}

static const char *first_of(const char *a, const char *b, const char *d, const char *e)
{
    return a ? a : b ? b : d ? d : e;
}

int s3_conf_resolve(struct s3_conf *c, struct err *err)
{
    struct profile_values files[2] = {{0}, {0}}; /* credentials, config */
    int rc = load_profiles(&files[0], &files[1]);
    if (rc == 0)
        rc = dup_into(&c->endpoint, first_of(env_nonempty("LIBSQL_BOTTOMLESS_ENDPOINT"), NULL, NULL,
                                             S3_DEFAULT_ENDPOINT));
    if (rc == 0)
        rc = dup_into(&c->bucket, first_of(env_nonempty("LIBSQL_BOTTOMLESS_BUCKET"), NULL, NULL,
                                           S3_DEFAULT_BUCKET));
    if (rc == 0)
        rc = resolve_credentials(c, files, 2);
    if (rc == 0)
        rc =
            dup_into(&c->region,
                     first_of(env_nonempty("LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION"),
                              env_nonempty("AWS_REGION"), env_nonempty("AWS_DEFAULT_REGION"),
                              first_of(files[1].region, files[0].region, NULL, S3_DEFAULT_REGION)));
    profile_values_free(&files[0]);
    profile_values_free(&files[1]);
    if (rc)
        return ERR(err, rc, "s3 config: %s", errno_name(rc));
    if (c->access_key_id == NULL || c->secret_access_key == NULL)
        return ERR(err, EINVAL,
                   "no S3 credentials: set LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID and "
                   "LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY (or AWS_ACCESS_KEY_ID and "
                   "AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials)");
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

void s3_conf_copy(struct s3_conf *dst, const struct s3_conf *src)
{
    *dst = *src;
    dst->endpoint = dup_or_null(src->endpoint);
    dst->bucket = dup_or_null(src->bucket);
    dst->region = dup_or_null(src->region);
    dst->access_key_id = dup_or_null(src->access_key_id);
    dst->secret_access_key = dup_or_null(src->secret_access_key);
    dst->session_token = dup_or_null(src->session_token);
    dst->ca_file = dup_or_null(src->ca_file);
}

static void free_secret(char **s)
{
    if (*s != NULL)
        OPENSSL_cleanse(*s, strlen(*s));
    free(*s);
    *s = NULL;
}

void s3_conf_free(struct s3_conf *c)
{
    if (c == NULL)
        return;
    free_secret(&c->secret_access_key);
    free_secret(&c->session_token);
    free(c->endpoint);
    free(c->bucket);
    free(c->region);
    free(c->access_key_id);
    free(c->ca_file);
    c->endpoint = c->bucket = c->region = c->access_key_id = c->ca_file = NULL;
}
