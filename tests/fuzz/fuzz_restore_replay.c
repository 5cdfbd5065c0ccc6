/* tests/fuzz/fuzz_restore_replay.c - the restore path for one generation's batches on
 * arbitrary bytes: the batch decompressors (wal/compress.h) and the frame parser / checksum
 * verifier / transaction applier (wal/restore_replay.h), writing into an in-memory file.
 * Input: byte 0 = flags (bits 0-1 compression raw/zstd/gz/raw, bit 2 verify checksums,
 * bits 3-5 = batches - 1, bit 6 claim one frame more than the body holds), bytes 1..12 = the
 * .meta object, the rest = the batch body (compressed as flagged). The body is decompressed
 * (capped at 16 MiB), cut into the flagged number of batches at frame boundaries and
 * replayed; then a second generation begins on the same target (gen_end/gen_begin reuse). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/buf.h"
#include "tests/fuzz/fuzz.h"
#include "wal/compress.h"
#include "wal/layout.h"
#include "wal/restore_replay.h"
#include "wal/walfmt.h"

#define FUZZ_REPLAY_MAX_BODY (16u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 + LAYOUT_META_BYTES)
        return 0;
    uint8_t flags = data[0];
    static const enum compression comps[] = {COMP_RAW, COMP_ZSTD, COMP_GZIP, COMP_RAW};
    enum compression c = comps[flags & 3];
    bool verify = flags & 4;
    unsigned n_batches = 1 + ((flags >> 3) & 7);
    bool claim_more = flags & 64;
    struct err e = {0};
    struct gen_meta meta;
    if (layout_meta_decode(data + 1, LAYOUT_META_BYTES, &meta, &e) != 0)
        return 0;
    const uint8_t *in = data + 1 + LAYOUT_META_BYTES;
    size_t in_len = size - 1 - LAYOUT_META_BYTES;
    struct buf body;
    buf_init(&body, FUZZ_REPLAY_MAX_BODY);
    if (c == COMP_RAW) {
        if (buf_append(&body, in, in_len) != 0)
            goto out;
    } else if (decompress_buf(c, in, in_len, &body, &e) != 0) {
        goto out;
    }
    int fd = memfd_create("fuzz-replay", MFD_CLOEXEC);
    if (fd < 0)
        goto out;
    struct replay *r = replay_new(fd, "/tmp", &e);
    if (!r) {
        close(fd);
        goto out;
    }
    for (int gen = 0; gen < 2; gen++) {
        err_clear(&e);
        if (replay_gen_begin(r, &meta, verify, &e) != 0)
            break;
        uint64_t fsize = wal_page_size_valid(meta.page_size) ? wal_frame_size(meta.page_size) : 0;
        uint64_t n_frames = fsize ? body.len / fsize : 0;
        uint32_t next = 1;
        size_t pos = 0;
        for (unsigned b = 0; b < n_batches && pos < body.len; b++) {
            uint64_t frames = b + 1 == n_batches ? n_frames - (next - 1)
                                                 : (n_frames - (next - 1)) / (n_batches - b);
            if (frames == 0)
                frames = 1;
            size_t bytes = fsize ? (size_t)(frames * fsize) : body.len;
            if (bytes > body.len - pos || b + 1 == n_batches)
                bytes = body.len - pos;
            uint32_t last = next + (uint32_t)frames - 1 + (claim_more && b + 1 == n_batches);
            err_clear(&e);
            if (replay_batch_begin(r, next, last, last, &e) != 0)
                break;
            int rc = 0;
            for (size_t off = 0; off < bytes && rc == 0; off += 777) /* odd feed sizes */
                rc = replay_feed(r, body.data + pos + off, bytes - off < 777 ? bytes - off : 777,
                                 &e);
            if (rc == 0)
                rc = replay_batch_end(r, &e);
            if (rc)
                break;
            pos += bytes;
            next = last + 1;
        }
        struct replay_stats st;
        replay_get_stats(r, &st);
        replay_gen_end(r);
    }
    replay_free(r);
    close(fd);
out:
    buf_free(&body);
    return 0;
}
