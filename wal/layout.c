/* wal/layout.c - the bottomless bucket layout (contract in layout.h).
 *
 * Bucket layout (bottomless-format.md §2, summarised in docs/format.md):
 *   <db>-<gen>/db.zstd|db.gz|db.raw   main db file at generation start (legacy: db.db, raw)
 *   <db>-<gen>/.changecounter         4 B: main db header bytes 24..27 (u32 BE)
 *   <db>-<gen>/.meta                  12 B: page size u32 BE, WAL header checksum-1, -2 (BE)
 *   <db>-<gen>/.dep                   16 B: parent generation uuid (RFC 4122 byte order)
 *   <db>-<gen>/<first>-<last>-<ts>.<ext>  frames first..last verbatim (24 B header + page
 *                                     each), one compressed stream; first/last "%012u", ts
 *                                     unix seconds unpadded, ext raw|gz|zstd
 *   legacy batch names: <first>-<last>.<gz|raw> and <first>-<last> (gzip or raw)
 *   <db>.tombstone                    8 B: i64 BE unix seconds
 * Generation ids are UUIDv7 whose 48-bit millisecond field holds the time counted backwards
 * from 9998-12-31T23:00:00Z, so that newer generations list first:
 *   ms = (253370761200 - sec)*1000 + (999999999 - nsec)/1000000; byte 6 = 0x7X, byte 8 = 10XX.
 * db_name must not contain '/': see layout_db_name_from_path for our path escape. */
#include "wal/layout.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "wal/walfmt.h"

/* ---------------------------------------------------------------- generation ids */

void gen_id_from_parts(int64_t sec, long nsec, const uint8_t rnd[10], struct gen_id *out)
{
    int64_t rsec = GEN_ID_EPOCH_S - sec;
    long rnsec = 999999999L - nsec;
    uint64_t ms = (uint64_t)rsec * 1000u + (uint64_t)(rnsec / 1000000L);

    for (int i = 0; i < 6; i++)
        out->b[i] = (uint8_t)(ms >> (8 * (5 - i)));
    out->b[6] = (uint8_t)(0x70 | (rnd[0] & 0x0f));
    out->b[7] = rnd[1];
    out->b[8] = (uint8_t)(0x80 | (rnd[2] & 0x3f));
    memcpy(out->b + 9, rnd + 3, 7);
}

int gen_id_new(const struct timespec *now, struct gen_id *out, struct err *err)
{
    uint8_t rnd[10];
    struct timespec ts;

    if (now)
        ts = *now;
    else
        clock_gettime(CLOCK_REALTIME, &ts);
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return ERR(err, EIO, "gen id: RAND_bytes failed");
    gen_id_from_parts(ts.tv_sec, ts.tv_nsec, rnd, out);
    return 0;
}

int gen_id_new_after(const struct timespec *now, const struct gen_id *prev, struct gen_id *out,
                     struct err *err)
{
    int rc = gen_id_new(now, out, err);
    if (rc != 0 || memcmp(out->b, prev->b, GEN_ID_BYTES) < 0)
        return rc;
    /* the first 6 bytes are the reversed milliseconds: one less is one millisecond later */
    uint64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = (ms << 8) | prev->b[i];
    if (ms == 0)
        return ERR(err, ERANGE, "gen id: no id sorts before %02x%02x...", prev->b[0], prev->b[1]);
    ms--;
    for (int i = 0; i < 6; i++)
        out->b[i] = (uint8_t)(ms >> (8 * (5 - i)));
    return 0;
}

void gen_id_format(const struct gen_id *id, char out[GEN_ID_STR_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (int i = 0; i < GEN_ID_BYTES; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[id->b[i] >> 4];
        out[o++] = hex[id->b[i] & 15];
    }
    out[o] = '\0';
}

static int hexval_lower(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int gen_id_parse(const char *s, size_t len, struct gen_id *out, struct err *err)
{
    struct gen_id id;
    size_t i = 0;

    if (len != GEN_ID_STR_LEN)
        return ERR(err, EBADMSG, "generation id: %zu characters, want %d", len, GEN_ID_STR_LEN);
    for (int b = 0; b < GEN_ID_BYTES; b++) {
        if (b == 4 || b == 6 || b == 8 || b == 10) {
            if (s[i] != '-')
                return ERR(err, EBADMSG, "generation id: '-' expected at %zu", i);
            i++;
        }
        int hi = hexval_lower(s[i]), lo = hexval_lower(s[i + 1]);
        if (hi < 0 || lo < 0)
            return ERR(err, EBADMSG, "generation id: not lowercase hex at %zu", i);
        id.b[b] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    if (out)
        *out = id;
    return 0;
}

bool gen_id_valid(const char *s, size_t len)
{
    return gen_id_parse(s, len, NULL, NULL) == 0;
}

static uint64_t gen_id_ms(const struct gen_id *id)
{
    uint64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = ms << 8 | id->b[i];
    return ms;
}

int64_t gen_id_created_s(const struct gen_id *id)
{
    return GEN_ID_EPOCH_S - (int64_t)(gen_id_ms(id) / 1000u);
}

void gen_id_created(const struct gen_id *id, struct timespec *out)
{
    uint64_t ms = gen_id_ms(id);
    out->tv_sec = (time_t)(GEN_ID_EPOCH_S - (int64_t)(ms / 1000u));
    out->tv_nsec = 999999999L - (long)(ms % 1000u) * 1000000L;
}

int gen_id_cmp(const struct gen_id *a, const struct gen_id *b)
{
    return memcmp(a->b, b->b, GEN_ID_BYTES);
}

bool gen_id_eq(const struct gen_id *a, const struct gen_id *b)
{
    return gen_id_cmp(a, b) == 0;
}

void layout_format_utc(int64_t unix_s, char *out, size_t cap)
{
    struct tm tm;
    time_t t = (time_t)unix_s;

    if (!gmtime_r(&t, &tm) || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "@%lld", (long long)unix_s);
}

int layout_parse_utc(const char *s, int64_t *unix_s_out, struct err *err)
{
    struct tm tm;
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    const char *rest;

    memset(&tm, 0, sizeof(tm));
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
        goto bad;
    rest = s + n;
    if (*rest == 'T' || *rest == ' ') {
        int m = 0;
        if (sscanf(rest + 1, "%2d:%2d:%2d%n", &h, &mi, &sec, &m) != 3 || m != 8)
            goto bad;
        rest += 1 + m;
        if (*rest == '.') {
            rest++;
            if (!isdigit((unsigned char)*rest))
                goto bad;
            while (isdigit((unsigned char)*rest))
                rest++;
        }
        if (*rest == 'Z')
            rest++;
        else if (!strcmp(rest, "+00:00"))
            rest += 6;
    }
    if (*rest != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        goto bad;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *unix_s_out = (int64_t)timegm(&tm);
    return 0;
bad:
    return ERR(err, EINVAL,
               "bad UTC time '%s': use YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or YYYY-MM-DDTHH:MM:SS", s);
}

/* ---------------------------------------------------------------- db_name <-> path */

static bool byte_needs_escape(unsigned char c)
{
    return c == '%' || c == '/' || c < 0x20 || c == 0x7f;
}

/* Relative, non-empty, no empty / "." / ".." components. */
static bool relpath_ok(const char *p)
{
    if (!*p || *p == '/')
        return false;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!e)
            break;
        p = e + 1;
        if (!*p)
            return false; /* trailing slash */
    }
    return true;
}

int layout_db_name_from_path(const char *relpath, char *out, size_t cap, struct err *err)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    if (!relpath_ok(relpath))
        return ERR(err, EINVAL, "db path '%s' is not a clean relative path", relpath);
    for (const unsigned char *p = (const unsigned char *)relpath; *p; p++) {
        if (o + 4 > cap)
            return ERR(err, ENAMETOOLONG, "db path too long for a db_name");
        if (byte_needs_escape(*p)) {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = '\0';
    if (!layout_db_name_valid(out))
        return ERR(err, ENAMETOOLONG, "db_name for '%s' is too long", relpath);
    return 0;
}

static int hexval_upper(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int layout_path_from_db_name(const char *db_name, char *out, size_t cap, struct err *err)
{
    size_t o = 0;

    if (!layout_db_name_valid(db_name))
        return ERR(err, EINVAL, "db_name '%s' is not valid", db_name);
    for (const char *p = db_name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (o + 2 > cap)
            return ERR(err, ENAMETOOLONG, "db_name '%s': path too long", db_name);
        if (c == '%') {
            int hi = hexval_upper(p[1]), lo = hi < 0 ? -1 : hexval_upper(p[2]);
            if (hi < 0 || lo < 0)
                return ERR(err, EINVAL, "db_name '%s': bad %%XX escape", db_name);
            c = (unsigned char)(hi << 4 | lo);
            if (c == 0 || !byte_needs_escape(c))
                return ERR(err, EINVAL, "db_name '%s': escape %%%c%c not canonical", db_name,
                           p[1], p[2]);
            p += 2;
        } else if (byte_needs_escape(c)) {
            return ERR(err, EINVAL, "db_name '%s': byte 0x%02x must be escaped", db_name, c);
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    if (!relpath_ok(out))
        return ERR(err, EINVAL, "db_name '%s' does not map to a clean relative path", db_name);
    return 0;
}

bool layout_db_name_valid(const char *db_name)
{
    size_t n = db_name ? strlen(db_name) : 0;
    /* room for "-<36>/" + a 44-char object name */
    return n > 0 && n + 1 + GEN_ID_STR_LEN + 1 + 64 < LAYOUT_KEY_MAX && !strchr(db_name, '/');
}

/* ---------------------------------------------------------------- keys */

static int key_fmt(char out[LAYOUT_KEY_MAX], const char *db, const struct gen_id *gen,
                   const char *suffix)
{
    char g[GEN_ID_STR_LEN + 1];
    int n;

    if (!layout_db_name_valid(db))
        return EINVAL;
    gen_id_format(gen, g);
    n = snprintf(out, LAYOUT_KEY_MAX, "%s-%s/%s", db, g, suffix);
    return n < 0 || n >= LAYOUT_KEY_MAX ? ENAMETOOLONG : 0;
}

int layout_key_gen_prefix(const char *db, const struct gen_id *gen, char out[LAYOUT_KEY_MAX])
{
    return key_fmt(out, db, gen, "");
}

int layout_key_snapshot(const char *db, const struct gen_id *gen, enum compression c,
                        char out[LAYOUT_KEY_MAX])
{
    char name[16];
    if (c == COMP_AUTO)
        return EINVAL;
    snprintf(name, sizeof(name), "db.%s", compression_ext(c));
    return key_fmt(out, db, gen, name);
}

int layout_key_snapshot_legacy(const char *db, const struct gen_id *gen,
                               char out[LAYOUT_KEY_MAX])
{
    return key_fmt(out, db, gen, "db.db");
}

int layout_key_meta(const char *db, const struct gen_id *gen, char out[LAYOUT_KEY_MAX])
{
    return key_fmt(out, db, gen, ".meta");
}

int layout_key_dep(const char *db, const struct gen_id *gen, char out[LAYOUT_KEY_MAX])
{
    return key_fmt(out, db, gen, ".dep");
}

int layout_key_changecounter(const char *db, const struct gen_id *gen, char out[LAYOUT_KEY_MAX])
{
    return key_fmt(out, db, gen, ".changecounter");
}

int layout_key_batch(const char *db, const struct gen_id *gen, uint32_t first, uint32_t last,
                     uint64_t unix_s, enum compression c, char out[LAYOUT_KEY_MAX])
{
    char name[80];
    if (c == COMP_AUTO || first == 0 || last < first)
        return EINVAL;
    snprintf(name, sizeof(name), "%012u-%012u-%llu.%s", first, last, (unsigned long long)unix_s,
             compression_ext(c));
    return key_fmt(out, db, gen, name);
}

int layout_key_tombstone(const char *db, char out[LAYOUT_KEY_MAX])
{
    int n;
    if (!layout_db_name_valid(db))
        return EINVAL;
    n = snprintf(out, LAYOUT_KEY_MAX, "%s" LAYOUT_TOMBSTONE_SUFFIX, db);
    return n < 0 || n >= LAYOUT_KEY_MAX ? ENAMETOOLONG : 0;
}

/* ---------------------------------------------------------------- names */

/* Decimal digits [p, p+n) into *out (<= max). */
static bool parse_dec(const char *p, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

int layout_batch_parse(const char *name, struct batch_name *out)
{
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    const char *dot = strchr(base, '.');
    size_t blen = dot ? (size_t)(dot - base) : strlen(base);
    const char *parts[3];
    size_t lens[3];
    int n_parts = 0;
    uint64_t first, last, ts = 0;
    struct batch_name b;

    memset(&b, 0, sizeof(b));
    /* split base on '-' */
    const char *p = base, *end = base + blen;
    while (p <= end) {
        const char *dash = memchr(p, '-', (size_t)(end - p));
        const char *e = dash ? dash : end;
        if (n_parts == 3)
            return EBADMSG;
        parts[n_parts] = p;
        lens[n_parts++] = (size_t)(e - p);
        if (!dash)
            break;
        p = dash + 1;
    }
    if (n_parts < 2)
        return EBADMSG;
    if (!parse_dec(parts[0], lens[0], UINT32_MAX, &first) ||
        !parse_dec(parts[1], lens[1], UINT32_MAX, &last))
        return EBADMSG;
    if (n_parts == 3) {
        if (!parse_dec(parts[2], lens[2], UINT64_MAX, &ts) || !dot)
            return EBADMSG;
        b.has_ts = true;
    }
    if (first == 0 || last < first)
        return EBADMSG;
    if (dot) {
        if (compression_parse(dot + 1, &b.comp))
            return EBADMSG;
    } else {
        b.comp = COMP_AUTO;
    }
    b.first = (uint32_t)first;
    b.last = (uint32_t)last;
    b.ts = ts;
    *out = b;
    return 0;
}

int layout_snapshot_parse(const char *name, enum compression *out)
{
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;

    if (!strcmp(base, "db.zstd"))
        *out = COMP_ZSTD;
    else if (!strcmp(base, "db.gz"))
        *out = COMP_GZIP;
    else if (!strcmp(base, "db.raw") || !strcmp(base, "db.db"))
        *out = COMP_RAW;
    else
        return EBADMSG;
    return 0;
}

/* ---------------------------------------------------------------- encodings */

void layout_meta_encode(const struct gen_meta *m, uint8_t out[LAYOUT_META_BYTES])
{
    be32_store(out, m->page_size);
    be32_store(out + 4, m->cksum1);
    be32_store(out + 8, m->cksum2);
}

int layout_meta_decode(const uint8_t *p, size_t len, struct gen_meta *out, struct err *err)
{
    if (len != LAYOUT_META_BYTES)
        return ERR(err, EBADMSG, ".meta: %zu bytes, want %d", len, LAYOUT_META_BYTES);
    out->page_size = be32_load(p);
    out->cksum1 = be32_load(p + 4);
    out->cksum2 = be32_load(p + 8);
    return 0;
}

void layout_dep_encode(const struct gen_id *parent, uint8_t out[LAYOUT_DEP_BYTES])
{
    memcpy(out, parent->b, LAYOUT_DEP_BYTES);
}

int layout_dep_decode(const uint8_t *p, size_t len, struct gen_id *out, struct err *err)
{
    if (len != LAYOUT_DEP_BYTES)
        return ERR(err, EBADMSG, ".dep: %zu bytes, want %d", len, LAYOUT_DEP_BYTES);
    memcpy(out->b, p, LAYOUT_DEP_BYTES);
    return 0;
}

void layout_changecounter_encode(uint32_t counter, uint8_t out[LAYOUT_CHANGECOUNTER_BYTES])
{
    be32_store(out, counter);
}

int layout_changecounter_decode(const uint8_t *p, size_t len, uint32_t *out, struct err *err)
{
    if (len != LAYOUT_CHANGECOUNTER_BYTES)
        return ERR(err, EBADMSG, ".changecounter: %zu bytes, want %d", len,
                   LAYOUT_CHANGECOUNTER_BYTES);
    *out = be32_load(p);
    return 0;
}

void layout_tombstone_encode(int64_t unix_s, uint8_t out[LAYOUT_TOMBSTONE_BYTES])
{
    be64_store(out, (uint64_t)unix_s);
}

int layout_tombstone_decode(const uint8_t *p, size_t len, int64_t *out, struct err *err)
{
    if (len != LAYOUT_TOMBSTONE_BYTES)
        return ERR(err, EBADMSG, "tombstone: %zu bytes, want %d", len, LAYOUT_TOMBSTONE_BYTES);
    *out = (int64_t)be64_load(p);
    return 0;
}

bool layout_is_tombstoned(int64_t tombstone_s, const struct gen_id *gen)
{
    return tombstone_s >= gen_id_created_s(gen);
}
