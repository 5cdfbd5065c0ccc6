/* wal/walfmt.c - SQLite WAL format.
 *
 * A -wal file is a 32-byte header followed by frames. Header fields, all big-endian u32:
 *   0 magic (0x377f0682: checksum words little-endian; 0x377f0683: big-endian)
 *   4 format version 3007000    8 page size (SQLite writes 65536 as is; 1 is read as 65536)
 *  12 checkpoint sequence
 *  16 salt-1   20 salt-2   24 checksum-1   28 checksum-2 (over bytes 0..23, seed 0,0)
 * Frame n (1-based) starts at 32 + (n-1)*(24+page_size): a 24-byte header
 *   0 page number   4 db size in pages after commit (0 = not a commit frame)
 *   8 salt-1   12 salt-2 (must equal the header's)   16 checksum-1   20 checksum-2
 * followed by the page. Frame checksums are cumulative: starting from the header checksum,
 * each frame folds its header bytes 0..7 then its page. The step over 32-bit words x[] read in
 * the magic's byte order is: s0 += x[2i] + s1; s1 += x[2i+1] + s0 (mod 2^32).
 * A frame is valid only if its salts match and its checksum matches the running value; a
 * transaction is committed when a valid chain ends in a frame whose db size is non-zero. */
#include "wal/walfmt.h"

#include <errno.h>
#include <string.h>

bool wal_page_size_valid(uint32_t page_size)
{
    return page_size >= WAL_MIN_PAGE && page_size <= WAL_MAX_PAGE &&
           (page_size & (page_size - 1)) == 0;
}

void wal_checksum(bool big_endian, const uint8_t *p, size_t len, uint32_t s[2])
{
    uint32_t s0 = s[0], s1 = s[1];
    const uint8_t *end = p + (len & ~(size_t)7);

    if (big_endian) {
        for (; p < end; p += 8) {
            s0 += be32_load(p) + s1;
            s1 += be32_load(p + 4) + s0;
        }
    } else {
        for (; p < end; p += 8) {
            uint32_t a =
                (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            uint32_t b =
                (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
            s0 += a + s1;
            s1 += b + s0;
        }
    }
    s[0] = s0;
    s[1] = s1;
}

int wal_header_parse(const uint8_t p[WAL_HEADER_BYTES], struct wal_header *out, struct err *err)
{
    struct wal_header h;
    uint32_t s[2] = {0, 0};

    h.magic = be32_load(p);
    h.version = be32_load(p + 4);
    h.page_size = be32_load(p + 8);
    h.ckpt_seq = be32_load(p + 12);
    h.salt1 = be32_load(p + 16);
    h.salt2 = be32_load(p + 20);
    h.cksum1 = be32_load(p + 24);
    h.cksum2 = be32_load(p + 28);
    if (h.magic != WAL_MAGIC_LE && h.magic != WAL_MAGIC_BE)
        return ERR(err, EBADMSG, "wal header: bad magic 0x%08x", h.magic);
    h.big_endian = h.magic == WAL_MAGIC_BE;
    if (h.version != WAL_FORMAT_VERSION)
        return ERR(err, EBADMSG, "wal header: unsupported format version %u", h.version);
    if (h.page_size == 1)
        h.page_size = 65536;
    if (!wal_page_size_valid(h.page_size))
        return ERR(err, EBADMSG, "wal header: bad page size %u", h.page_size);
    wal_checksum(h.big_endian, p, 24, s);
    if (s[0] != h.cksum1 || s[1] != h.cksum2)
        return ERR(err, EBADMSG, "wal header: checksum mismatch");
    *out = h;
    return 0;
}

void wal_header_encode(const struct wal_header *h, uint8_t out[WAL_HEADER_BYTES])
{
    uint32_t s[2] = {0, 0};
    be32_store(out, h->big_endian ? WAL_MAGIC_BE : WAL_MAGIC_LE);
    be32_store(out + 4, WAL_FORMAT_VERSION);
    be32_store(out + 8, h->page_size); /* SQLite writes 65536 as is (1 only in db headers) */
    be32_store(out + 12, h->ckpt_seq);
    be32_store(out + 16, h->salt1);
    be32_store(out + 20, h->salt2);
    wal_checksum(h->big_endian, out, 24, s);
    be32_store(out + 24, s[0]);
    be32_store(out + 28, s[1]);
}

void wal_frame_header_parse(const uint8_t p[WAL_FRAME_HEADER_BYTES], struct wal_frame_header *out)
{
    out->pgno = be32_load(p);
    out->db_pages = be32_load(p + 4);
    out->salt1 = be32_load(p + 8);
    out->salt2 = be32_load(p + 12);
    out->cksum1 = be32_load(p + 16);
    out->cksum2 = be32_load(p + 20);
}

bool wal_frame_checksum_ok(bool big_endian, const uint8_t *frame_header, const uint8_t *page,
                           uint32_t page_size, uint32_t s[2])
{
    wal_checksum(big_endian, frame_header, 8, s);
    wal_checksum(big_endian, page, page_size, s);
    return s[0] == be32_load(frame_header + 16) && s[1] == be32_load(frame_header + 20);
}

void wal_frames_rechain(bool big_endian, uint32_t salt1, uint32_t salt2, uint32_t page_size,
                        uint8_t *frames, size_t n_frames, uint32_t s[2])
{
    size_t fsize = WAL_FRAME_HEADER_BYTES + (size_t)page_size;

    for (size_t i = 0; i < n_frames; i++) {
        uint8_t *f = frames + i * fsize;
        be32_store(f + 8, salt1);
        be32_store(f + 12, salt2);
        wal_checksum(big_endian, f, 8, s);
        wal_checksum(big_endian, f + WAL_FRAME_HEADER_BYTES, page_size, s);
        be32_store(f + 16, s[0]);
        be32_store(f + 20, s[1]);
    }
}
