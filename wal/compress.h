/* wal/compress.h - streaming zstd / gzip / raw encoders and decoders for bucket objects.
 * In/out:  push model. Feed any number of chunks with *_write(), finish with *_finish(); the
 *          sink callback receives output in order, in chunks of at most COMPRESS_CHUNK bytes.
 *          Memory is bounded (a few hundred KiB per stream, whatever the input size).
 * Formats: COMP_ZSTD = one zstd stream (libzstd; the decoder accepts several concatenated
 *          frames); COMP_GZIP = gzip (zlib, RFC 1952 header; the decoder accepts several
 *          concatenated members); COMP_RAW = bytes as they are. COMP_AUTO is for decoding only:
 *          gzip if the data starts with 1f 8b, zstd if it starts with 28 b5 2f fd, else raw
 *          (legacy batch names `<first>-<last>` carry no extension).
 *          Names follow bottomless (§2.3 of bottomless-format.md): "zstd", "gz"/"gzip",
 *          "raw"/"" on input; "zstd", "gz", "raw" on output. zstd is the default.
 * Owns:    its compression contexts and buffers: *_new() -> *_free() (NULL is a no-op).
 * Threads: one stream per thread; different streams are independent.
 * Errors:  0 or a positive errno with *err set. Corrupt or truncated compressed input is
 *          EBADMSG ("zstd: ..."/"gzip: ..." naming what was wrong); a truncated stream is only
 *          detected by *_finish(). A non-zero return from the sink aborts and is returned. */
#ifndef BFS_WAL_COMPRESS_H
#define BFS_WAL_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define COMPRESS_CHUNK (128u * 1024u)
#define COMPRESS_DEFAULT COMP_ZSTD

enum compression { COMP_RAW, COMP_GZIP, COMP_ZSTD, COMP_AUTO };

/* "zstd" | "gz" | "gzip" | "raw" | "none" | "" (the last three = raw) -> *out; EINVAL otherwise. */
int compression_parse(const char *name, enum compression *out);
/* Key extension: "raw", "gz", "zstd" ("auto" for COMP_AUTO, never used in keys). */
const char *compression_ext(enum compression c);
/* COMP_GZIP / COMP_ZSTD / COMP_RAW from the first bytes (len may be short: then COMP_RAW). */
enum compression compression_sniff(const uint8_t *p, size_t len);

/* Receives output bytes; returns 0 or a positive errno (aborts the stream). */
typedef int compress_sink_fn(void *arg, const uint8_t *p, size_t len);

struct compressor;
/* level: 0 = library default (zstd 3, gzip 6). COMP_AUTO is EINVAL. */
struct compressor *compressor_new(enum compression c, int level, compress_sink_fn *sink, void *arg,
                                  struct err *err);
int compressor_write(struct compressor *z, const void *p, size_t len, struct err *err);
/* Flushes the end of the stream into the sink. No write after finish. */
int compressor_finish(struct compressor *z, struct err *err);
void compressor_free(struct compressor *z);

struct decompressor;
struct decompressor *decompressor_new(enum compression c, compress_sink_fn *sink, void *arg,
                                      struct err *err);
int decompressor_write(struct decompressor *d, const void *p, size_t len, struct err *err);
/* EBADMSG when the input ended inside a frame/member (truncated) or was empty for gzip/zstd. */
int decompressor_finish(struct decompressor *d, struct err *err);
/* Compressed bytes consumed / decompressed bytes produced so far. */
uint64_t decompressor_bytes_in(const struct decompressor *d);
uint64_t decompressor_bytes_out(const struct decompressor *d);
void decompressor_free(struct decompressor *d);

/* One-shot helpers on memory. out must be initialised by the caller (its max caps the size:
 * EMSGSIZE beyond); output is appended. */
int compress_buf(enum compression c, int level, const void *p, size_t len, struct buf *out,
                 struct err *err);
int decompress_buf(enum compression c, const void *p, size_t len, struct buf *out,
                   struct err *err);

/* Compresses [0, EOF) of in_fd (pread from offset 0) into a new anonymous temp file created in
 * tmp_dir (O_TMPFILE, else mkstemp + unlink). *out_fd is positioned anywhere; the caller closes
 * it; *len_out = compressed size. For COMP_RAW the copy is made too (simple uniform contract). */
int compress_fd_to_tmpfile(enum compression c, int level, int in_fd, const char *tmp_dir,
                           int *out_fd, uint64_t *len_out, struct err *err);
/* The same for the concatenation of the n files at paths, as one stream. Each is opened only
 * while it is read (any number of files, one descriptor); a missing one is an error. */
int compress_files_to_tmpfile(enum compression c, int level, const char *const *paths, size_t n,
                              const char *tmp_dir, int *out_fd, uint64_t *len_out,
                              struct err *err);
/* Feeds [0, EOF) of fd into z. */
int compressor_write_fd(struct compressor *z, int fd, struct err *err);
/* Writes a stream's input into z (compressor_write / compressor_write_fd); 0 or an errno. */
typedef int compress_source_fn(void *arg, struct compressor *z, struct err *err);
/* Like compress_files_to_tmpfile for whatever src writes (its error is returned as is). */
int compress_source_to_tmpfile(enum compression c, int level, compress_source_fn *src, void *arg,
                               const char *tmp_dir, int *out_fd, uint64_t *len_out,
                               struct err *err);
/* Decompresses [0, EOF) of in_fd into the sink (bounded memory). */
int decompress_fd(enum compression c, int in_fd, compress_sink_fn *sink, void *arg,
                  struct err *err);

#endif
