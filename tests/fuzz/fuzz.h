/* tests/fuzz/fuzz.h - fuzz targets (libFuzzer entry point) for the decoders that read outside
 * input: the WAL decoder (wal/decoder.h), the batch replay of restore (wal/restore_replay.h +
 * the batch decompressors) and the S3 XML parsers (s3/xml.h).
 * Build: with clang -fsanitize=fuzzer (make fuzz-lf, run by `make torture`) libFuzzer calls
 *        LLVMFuzzerTestOneInput; otherwise tests/fuzz/standalone.c supplies a main that runs
 *        every file named on the command line (directories: every file in them) once, which
 *        `make test` uses to replay the kept corpus (tests/fuzz/corpus/<target>/).
 * Rule:  a target never fails on bad input (errors are the expected outcome); a crash, a
 *        sanitizer report, a leak or a hang is the bug. */
#ifndef BFS_TESTS_FUZZ_FUZZ_H
#define BFS_TESTS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
