/* fs/status.h - renders MOUNTPOINT/.bottomless/status: one JSON document describing the
 * mount (bucket, endpoint, mode, S3 counters, lazy-restore state) and, per database, what the
 * replicator reports (wal/replicator.h struct repl_db_status).
 * Format:  {"version":1,"bucket":"..","endpoint":"..","backing_dir":"..","durable":false,
 *           "s3":{"requests":N,"puts":N,"gets":N,"retries":N,"failures":N,
 *                 "bytes_up":N,"bytes_down":N},
 *           "lazy":{"virtual":N,"restores":N,"restore_failures":N,"listed_ms":N,
 *                   "last_error":".."},
 *           "virtual":[{"path":"..","db_name":"..","size":N|null}],
 *           "databases":[{"db_name":"..","path":"..","generation":"..","journal_mode":"wal",
 *                         "protected":true,"last_committed_frame":N,"last_uploaded_frame":N,
 *                         "lag_s":0.0,"staged_bytes":N,"last_error":"..",...}]}
 *          Strings are JSON-escaped (control bytes as \u00XX); documented in
 *          docs/architecture.md ("Status file").
 * Owns:    nothing; appends to the caller's buf.
 * Threads: safe from any thread (the replicator and lazy modules lock themselves).
 * Errors:  0, or EMSGSIZE / ENOMEM from the buffer (which is then freed, c-style B5). */
#ifndef BFS_FS_STATUS_H
#define BFS_FS_STATUS_H

#include <stdbool.h>

#include "common/buf.h"
#include "fs/lazy.h"
#include "s3/s3.h"
#include "wal/replicator.h"

struct status_src {
    struct replicator *repl; /* may be NULL (no databases section) */
    struct lazy *lazy;       /* may be NULL */
    struct s3_client *s3;    /* may be NULL */
    const char *bucket;
    const char *endpoint;
    const char *backing_dir; /* read by bottomlessfs -u when the mount's source hides it */
    bool durable;
};

int status_render(const struct status_src *src, struct buf *out);
/* Appends s as a JSON string literal (with quotes). */
int status_json_string(struct buf *out, const char *s);

#endif
