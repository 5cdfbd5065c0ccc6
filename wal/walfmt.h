/* wal/walfmt.h - SQLite WAL file format: header and frame-header parsing, the cumulative
 * checksum, frame offsets. Pure functions on byte arrays: no I/O, no state, thread-safe.
 * The format itself is described at the top of walfmt.c (and in SQLite's wal.c);
 * bucket-side use of it is in ../shared/reference/bottomless-format.md (Appendix A). */
#ifndef BFS_WAL_WALFMT_H
#define BFS_WAL_WALFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define WAL_HEADER_BYTES 32
#define WAL_FRAME_HEADER_BYTES 24
#define WAL_MAGIC_LE 0x377f0682u /* checksum words read little-endian */
#define WAL_MAGIC_BE 0x377f0683u /* checksum words read big-endian */
#define WAL_FORMAT_VERSION 3007000u
#define WAL_MIN_PAGE 512u
#define WAL_MAX_PAGE 65536u

struct wal_header {
    uint32_t magic;
    uint32_t version;
    uint32_t page_size; /* decoded: 65536 also when stored as 1 */
    uint32_t ckpt_seq;
    uint32_t salt1, salt2;
    uint32_t cksum1, cksum2; /* header checksum = seed of frame 1's checksum */
    bool big_endian;         /* magic says checksum words are big-endian */
};

struct wal_frame_header {
    uint32_t pgno;
    uint32_t db_pages; /* size of the database in pages after commit; 0 = not a commit */
    uint32_t salt1, salt2;
    uint32_t cksum1, cksum2;
};

static inline uint32_t be32_load(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void be32_store(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline uint64_t be64_load(const uint8_t *p)
{
    return (uint64_t)be32_load(p) << 32 | be32_load(p + 4);
}
static inline void be64_store(uint8_t *p, uint64_t v)
{
    be32_store(p, (uint32_t)(v >> 32));
    be32_store(p + 4, (uint32_t)v);
}

/* True for 512..65536 powers of two. */
bool wal_page_size_valid(uint32_t page_size);
/* Parses and validates (magic, version, page size, header checksum): 0 or EBADMSG. */
int wal_header_parse(const uint8_t p[WAL_HEADER_BYTES], struct wal_header *out, struct err *err);
/* Builds a valid 32-byte header as SQLite does (page size 65536 written as 65536: SQLite's
 * recovery rejects a WAL header holding 1). Used by tests and by restore tooling. */
void wal_header_encode(const struct wal_header *h, uint8_t out[WAL_HEADER_BYTES]);
void wal_frame_header_parse(const uint8_t p[WAL_FRAME_HEADER_BYTES], struct wal_frame_header *out);
/* SQLite's checksum step: folds len bytes (a multiple of 8) into s[0], s[1]. */
void wal_checksum(bool big_endian, const uint8_t *p, size_t len, uint32_t s[2]);
/* The block weights wal_checksum uses (for tests): *n entries, see wal/walfmt.c. */
const uint32_t *wal_checksum_weights(size_t *n);
/* Checksum of one frame given the previous cumulative value: header bytes 0..7, then page.
 * Returns true when it equals the stored cksum1/cksum2 (s is updated either way). */
bool wal_frame_checksum_ok(bool big_endian, const uint8_t *frame_header, const uint8_t *page,
                           uint32_t page_size, uint32_t s[2]);
/* Rewrites the salts and checksums of n_frames consecutive frames (24-byte header + page each)
 * so that they chain from s (in/out: the cumulative checksum before the first frame, after the
 * last on return). A range that already chains from s comes out byte-identical. Used to ship
 * frames whose stored chain SQLite left broken (see wal_commit.rechained in decoder.h). */
void wal_frames_rechain(bool big_endian, uint32_t salt1, uint32_t salt2, uint32_t page_size,
                        uint8_t *frames, size_t n_frames, uint32_t s[2]);
/* Chains are linear in their start: d (the difference of two chains' states) becomes what it is
 * after `steps` more checksum steps (one step per 8 bytes) over any data. */
void wal_checksum_carry(uint32_t d[2], uint64_t steps);
/* The state after n_frames whole frames of page_size, chained from to_in, given that the same
 * frames chained from from_in end at from_out (e.g. their stored chain): no frame is read. */
void wal_chain_shift(uint32_t page_size, uint64_t n_frames, const uint32_t from_in[2],
                     const uint32_t from_out[2], const uint32_t to_in[2], uint32_t to_out[2]);
/* Byte offset of 1-based frame n. */
static inline uint64_t wal_frame_offset(uint32_t page_size, uint32_t n)
{
    return WAL_HEADER_BYTES + (uint64_t)(n - 1) * (WAL_FRAME_HEADER_BYTES + page_size);
}
static inline uint64_t wal_frame_size(uint32_t page_size)
{
    return WAL_FRAME_HEADER_BYTES + (uint64_t)page_size;
}

#endif
