/* wal/layout.h - the libSQL "bottomless" bucket layout: generation ids, object keys, the
 * encodings of the small metadata objects, batch-name parsing, the db_name <-> path mapping,
 * and listing helpers on the S3 client.
 * Format:  /work/shared/reference/bottomless-format.md §2-§3 and docs/format.md (our summary,
 *          incl. the db_name escape). The layout is also summarised at the top of layout.c.
 *            <db>-<gen>/db.zstd | db.gz | db.raw (legacy db.db)   snapshot at generation start
 *            <db>-<gen>/.changecounter   4 B  u32 BE (main db header bytes 24..27)
 *            <db>-<gen>/.meta           12 B  page size u32 BE, WAL header cksum-1, cksum-2 BE
 *            <db>-<gen>/.dep            16 B  parent generation uuid, raw bytes
 *            <db>-<gen>/%012u-%012u-<unix_secs>.<zstd|gz|raw>   WAL frames first..last
 *            <db>.tombstone              8 B  i64 BE unix seconds
 * Owns:    pure functions own nothing; list helpers return arrays the caller frees with the
 *          matching *_free function.
 * Threads: everything is thread-safe (no state); gen_id_new uses OpenSSL RAND_bytes.
 * Errors:  0 or a positive errno with *err set. Wrong object sizes and malformed ids/names are
 *          EBADMSG; a key longer than LAYOUT_KEY_MAX is ENAMETOOLONG; a missing object ENOENT
 *          (read helpers) - callers decide whether missing matters. */
#ifndef BFS_WAL_LAYOUT_H
#define BFS_WAL_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/err.h"
#include "s3/s3.h"
#include "wal/compress.h"

#define LAYOUT_KEY_MAX 1024   /* S3's limit on key length, incl. our NUL */
#define GEN_ID_BYTES 16
#define GEN_ID_STR_LEN 36     /* 8-4-4-4-12 lowercase hex, without NUL */
#define GEN_ID_EPOCH_S 253370761200LL /* 9998-12-31T23:00:00Z: created_s = EPOCH - ms/1000 */
#define LAYOUT_META_BYTES 12
#define LAYOUT_DEP_BYTES 16
#define LAYOUT_CHANGECOUNTER_BYTES 4
#define LAYOUT_TOMBSTONE_BYTES 8
#define LAYOUT_TOMBSTONE_SUFFIX ".tombstone"
#define LAYOUT_TOMBSTONE_MAX 8210298412799LL /* bottomless' "delete everything" value */
#define LAYOUT_MAX_DEP_DEPTH 100

/* ---- generation ids (UUIDv7 with a reversed timestamp, §3) ---- */
struct gen_id {
    uint8_t b[GEN_ID_BYTES];
};
/* New id for the time now (CLOCK_REALTIME) with RAND_bytes; EIO if RAND_bytes fails. */
int gen_id_new(const struct timespec *now, struct gen_id *out, struct err *err);
/* The same, but sorting strictly before prev (newer): ids of one millisecond order by their
 * random bits, so an id made in prev's millisecond (or with the clock behind it) takes prev's
 * time plus 1 ms instead. For a generation that must be its database's newest. */
int gen_id_new_after(const struct timespec *now, const struct gen_id *prev, struct gen_id *out,
                     struct err *err);
/* Deterministic id (tests, tools): 10 random bytes given. */
void gen_id_from_parts(int64_t sec, long nsec, const uint8_t rnd[10], struct gen_id *out);
/* out gets 36 chars + NUL, lowercase. */
void gen_id_format(const struct gen_id *id, char out[GEN_ID_STR_LEN + 1]);
/* Exactly 36 chars of lowercase 8-4-4-4-12 hex (len = chars to read; no NUL needed).
 * Uppercase is rejected (bottomless re-formats ids lowercase). EBADMSG otherwise. */
int gen_id_parse(const char *s, size_t len, struct gen_id *out, struct err *err);
bool gen_id_valid(const char *s, size_t len);
/* Created-at from the id: exact seconds; nanoseconds only millisecond-accurate. */
int64_t gen_id_created_s(const struct gen_id *id);
void gen_id_created(const struct gen_id *id, struct timespec *out);
/* memcmp order: < 0 when a is NEWER than b (lists first). */
int gen_id_cmp(const struct gen_id *a, const struct gen_id *b);
bool gen_id_eq(const struct gen_id *a, const struct gen_id *b);
/* "2023-11-29T07:34:00Z" into out (>= 21 bytes). */
void layout_format_utc(int64_t unix_s, char *out, size_t cap);
/* Parses "YYYY-MM-DD", "YYYY-MM-DD HH:MM:SS", "YYYY-MM-DDTHH:MM:SS[.fff][Z]" as UTC
 * (fraction dropped). EINVAL on anything else. */
int layout_parse_utc(const char *s, int64_t *unix_s_out, struct err *err);

/* ---- db_name <-> relative path ----
 * db_name may not contain '/'. Mapping (documented in docs/format.md): each byte of the path is
 * kept except '%' -> "%25", '/' -> "%2F", bytes < 0x20 and 0x7f -> "%XX" (uppercase hex).
 * Paths must be relative, non-empty, without "." / ".." / empty components (EINVAL).
 * Decoding rejects any '/' , bad %XX, escapes that were not needed, and results that are not
 * valid relative paths (EINVAL), so restoring from any key never leaves the target directory. */
int layout_db_name_from_path(const char *relpath, char *out, size_t cap, struct err *err);
int layout_path_from_db_name(const char *db_name, char *out, size_t cap, struct err *err);
/* Non-empty, no '/', no NUL, fits in a key with room for the generation suffix. */
bool layout_db_name_valid(const char *db_name);

/* ---- keys (all return 0 or ENAMETOOLONG / EINVAL for a bad db_name) ---- */
int layout_key_gen_prefix(const char *db, const struct gen_id *gen, char out[LAYOUT_KEY_MAX]);
/* db.zstd / db.gz / db.raw (COMP_AUTO: EINVAL). */
int layout_key_snapshot(const char *db, const struct gen_id *gen, enum compression c,
                        char out[LAYOUT_KEY_MAX]);
int layout_key_snapshot_legacy(const char *db, const struct gen_id *gen,
                               char out[LAYOUT_KEY_MAX]); /* db.db */
int layout_key_meta(const char *db, const struct gen_id *gen, char out[LAYOUT_KEY_MAX]);
int layout_key_dep(const char *db, const struct gen_id *gen, char out[LAYOUT_KEY_MAX]);
int layout_key_changecounter(const char *db, const struct gen_id *gen, char out[LAYOUT_KEY_MAX]);
int layout_key_batch(const char *db, const struct gen_id *gen, uint32_t first, uint32_t last,
                     uint64_t unix_s, enum compression c, char out[LAYOUT_KEY_MAX]);
int layout_key_tombstone(const char *db, char out[LAYOUT_KEY_MAX]);

/* ---- batch names (§2.4): the part after the last '/' ---- */
struct batch_name {
    uint32_t first, last;  /* inclusive frame range, first >= 1, last >= first */
    uint64_t ts;           /* unix seconds; 0 when has_ts is false */
    bool has_ts;           /* false for the legacy "<first>-<last>[.<ext>]" names */
    enum compression comp; /* COMP_AUTO for legacy names without extension (gzip or raw) */
};
/* Accepts "<first>-<last>-<ts>.<ext>", "<first>-<last>.<ext>" (ext raw|gz|gzip|zstd|""),
 * "<first>-<last>". Digits only (leading zeros fine), first/last fit u32, ts fits u64.
 * Returns 0, or EBADMSG for anything else (".meta", "db.zstd", garbage). A full key may be
 * passed: only the part after the last '/' is parsed. */
int layout_batch_parse(const char *name, struct batch_name *out);

/* Snapshot object name ("db.zstd", "db.gz", "db.raw", "db.db") -> compression; EBADMSG if
 * the name is not a snapshot. */
int layout_snapshot_parse(const char *name, enum compression *out);

/* ---- metadata object encodings (byte exact, §2.5-2.8) ---- */
struct gen_meta {
    uint32_t page_size;      /* as stored (not validated here) */
    uint32_t cksum1, cksum2; /* WAL header checksum = seed of frame 1's checksum */
};
void layout_meta_encode(const struct gen_meta *m, uint8_t out[LAYOUT_META_BYTES]);
int layout_meta_decode(const uint8_t *p, size_t len, struct gen_meta *out, struct err *err);
void layout_dep_encode(const struct gen_id *parent, uint8_t out[LAYOUT_DEP_BYTES]);
int layout_dep_decode(const uint8_t *p, size_t len, struct gen_id *out, struct err *err);
void layout_changecounter_encode(uint32_t counter, uint8_t out[LAYOUT_CHANGECOUNTER_BYTES]);
int layout_changecounter_decode(const uint8_t *p, size_t len, uint32_t *out, struct err *err);
void layout_tombstone_encode(int64_t unix_s, uint8_t out[LAYOUT_TOMBSTONE_BYTES]);
int layout_tombstone_decode(const uint8_t *p, size_t len, int64_t *out, struct err *err);
/* Tombstone rule (§2.8): generation is hidden when tombstone_s >= created_s(gen). */
bool layout_is_tombstoned(int64_t tombstone_s, const struct gen_id *gen);

/* ---- listing helpers on the S3 client ---- */
/* Generations of db, newest first. Only "<db>-<uuid>/" with a valid lowercase uuid count, so
 * a database named "<db>-x" never shows up as a generation of "<db>". Empty list is 0. */
int layout_list_generations(struct s3_client *c, const char *db, struct gen_id **ids_out,
                            size_t *n_out, struct err *err);
/* Database names in the bucket (sorted, unique): from "<db>-<uuid>/" prefixes, in one
 * listing. tombstoned_out (may be NULL; malloc'ed, one per name, the caller frees): whether
 * that listing holds "<db>.tombstone", so a reader of tombstones GETs only those. */
int layout_list_databases(struct s3_client *c, char ***names_out, bool **tombstoned_out,
                          size_t *n_out, struct err *err);
void layout_names_free(char **names, size_t n);
/* Every object under "<db>-<gen>/" (all pages), in key order. */
struct layout_objects {
    struct s3_object_info *v;
    size_t n;
};
int layout_list_gen_objects(struct s3_client *c, const char *db, const struct gen_id *gen,
                            struct layout_objects *out, struct err *err);
void layout_objects_free(struct layout_objects *o);
/* Readers: ENOENT when the object is missing (then *err is NOT filled: missing is an answer),
 * EBADMSG (naming the key) for a wrong size, other S3 errors as s3.h. */
int layout_read_meta(struct s3_client *c, const char *db, const struct gen_id *gen,
                     struct gen_meta *out, struct err *err);
int layout_read_dep(struct s3_client *c, const char *db, const struct gen_id *gen,
                    struct gen_id *parent_out, struct err *err);
int layout_read_changecounter(struct s3_client *c, const char *db, const struct gen_id *gen,
                              uint32_t *out, struct err *err);
int layout_read_tombstone(struct s3_client *c, const char *db, int64_t *out, struct err *err);

#endif
