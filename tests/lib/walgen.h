/* tests/lib/walgen.h - test helpers for WAL bytes.
 *
 * memwal:  a growable in-memory file (write / truncate / pread), the stand-in for a backing -wal
 *          file when a decoder is fed without a real file.
 * walops:  an ordered log of "write bytes at off" / "truncate to size" operations, as a FUSE
 *          daemon would see them (recorded from SQLite through tapvfs, or produced by walgen).
 * walgen:  builds a WAL the way SQLite writes one, as a walops log plus the resulting memwal
 *          image: header write at 0, then per frame a 24-byte header write and a page write;
 *          either byte order of checksums; frames with zeroed salts/checksums (an open
 *          transaction after an in-place rewrite), in-place page rewrites, checksum rewrites,
 *          rollbacks, restarts with new salts, truncation.
 * Owns:    everything it allocates; _free() releases (NULL is a no-op). Aborts on OOM (tests).
 * Threads: not thread-safe. */
#ifndef BFS_TESTS_LIB_WALGEN_H
#define BFS_TESTS_LIB_WALGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct memwal {
    uint8_t *data;
    size_t len, cap;
};
void memwal_write(struct memwal *m, uint64_t off, const void *p, size_t len);
void memwal_truncate(struct memwal *m, uint64_t size);
/* A wal_decoder_ops.read for a struct memwal * arg. */
int memwal_read(void *arg, uint64_t off, void *buf, size_t len, size_t *got_out, struct err *err);
void memwal_free(struct memwal *m);

enum walop_kind { WALOP_WRITE, WALOP_TRUNCATE };
struct walop {
    enum walop_kind kind;
    uint64_t off;  /* write offset, or truncate size */
    size_t len;    /* write length */
    uint8_t *data; /* write bytes (owned) */
};
struct walops {
    struct walop *v;
    size_t n, cap;
};
void walops_add_write(struct walops *o, uint64_t off, const void *p, size_t len);
void walops_add_truncate(struct walops *o, uint64_t size);
void walops_free(struct walops *o);

struct walgen;
struct walgen *walgen_new(uint32_t page_size, bool big_endian, uint32_t salt1, uint32_t salt2);
void walgen_free(struct walgen *g);
/* Writes the header at offset 0 (frames count from 1 again). */
void walgen_header(struct walgen *g);
/* Checkpoint restart: ckpt_seq + 1, the given salts, header written. */
void walgen_restart(struct walgen *g, uint32_t salt1, uint32_t salt2);
/* Appends a frame for pgno (page bytes derived from pgno and fill); db_pages != 0 makes it a
 * commit frame. Valid salts/checksum unless unsalted (then zeros, and the chain is not
 * advanced: call walgen_rewrite_checksums before relying on later frames). Returns its index. */
uint32_t walgen_frame(struct walgen *g, uint32_t pgno, uint32_t db_pages, uint32_t fill);
uint32_t walgen_frame_unsalted(struct walgen *g, uint32_t pgno, uint32_t db_pages, uint32_t fill);
/* Appends a commit frame (pgno, db_pages) and returns its index. */
uint32_t walgen_commit(struct walgen *g, uint32_t pgno, uint32_t db_pages);
/* Rewrites frame n's page in place (page write only, header untouched). */
void walgen_rewrite_page(struct walgen *g, uint32_t n, uint32_t fill);
/* Re-salts and re-checksums frames from..to (header writes only, in order), chaining from
 * frame from-1 as stored in the image (or the header). */
void walgen_rewrite_checksums(struct walgen *g, uint32_t from, uint32_t to);
/* Rolls back: the next frame appended is n+1, chaining from frame n's stored checksum. */
void walgen_rollback_to(struct walgen *g, uint32_t n);
void walgen_truncate(struct walgen *g, uint64_t size);
/* Sets the running checksum the next appended frame chains from (to mimic SQLite bugs). */
void walgen_set_chain(struct walgen *g, uint32_t s0, uint32_t s1);
/* Flips one bit at byte off in the image and in the last logged write that holds it (so a
 * replay of the log produces the corrupt image). */
void walgen_flip_bit(struct walgen *g, uint64_t off, unsigned bit);

uint32_t walgen_page_size(const struct walgen *g);
uint32_t walgen_nframes(const struct walgen *g); /* frames appended in this sequence */
const struct walops *walgen_ops(const struct walgen *g);
struct memwal *walgen_image(struct walgen *g);
/* Page bytes walgen uses for (pgno, fill). */
void walgen_fill_page(uint8_t *page, uint32_t page_size, uint32_t pgno, uint32_t fill);

#endif
