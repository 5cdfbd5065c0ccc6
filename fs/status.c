/* fs/status.c - the JSON of MOUNTPOINT/.bottomless/status (format in fs/status.h). */
#include "fs/status.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "wal/layout.h"

int status_json_string(struct buf *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    int rc = buf_append(out, "\"", 1);
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");

    while (rc == 0 && *p != '\0') {
        const unsigned char *start = p;

        while (*p != '\0' && *p >= 0x20 && *p != '"' && *p != '\\' && *p != 0x7f)
            p++;
        if (p > start)
            rc = buf_append(out, start, (size_t)(p - start));
        if (rc != 0 || *p == '\0')
            break;
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};

            rc = buf_append(out, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15]};

            rc = buf_append(out, esc, 6);
        }
        p++;
    }
    if (rc == 0)
        rc = buf_append(out, "\"", 1);
    return rc;
}

struct render_ctx {
    struct buf *out;
    int rc;
    bool first;
};

static void add_db(void *arg, const struct repl_db_status *st)
{
    struct render_ctx *c = arg;
    char path[4096];
    struct buf *b = c->out;
    int rc = c->rc;

    if (rc != 0)
        return;
    if (layout_path_from_db_name(st->db_name, path, sizeof path, NULL) != 0)
        path[0] = '\0';
    if (!c->first)
        rc = buf_append(b, ",", 1);
    c->first = false;
    if (rc == 0)
        rc = buf_append(b, "{\"db_name\":", 11);
    if (rc == 0)
        rc = status_json_string(b, st->db_name);
    if (rc == 0)
        rc = buf_append(b, ",\"path\":", 8);
    if (rc == 0)
        rc = status_json_string(b, path);
    if (rc == 0)
        rc = buf_append(b, ",\"generation\":", 14);
    if (rc == 0)
        rc = status_json_string(b, st->generation);
    if (rc == 0)
        rc = buf_append(b, ",\"journal_mode\":", 16);
    if (rc == 0)
        rc = status_json_string(b, st->journal_mode != NULL ? st->journal_mode : "unknown");
    if (rc == 0)
        rc = buf_appendf(
            b,
            ",\"protected\":%s,\"last_committed_frame\":%" PRIu32
            ",\"last_uploaded_frame\":%" PRIu32 ",\"lag_s\":%.3f"
            ",\"staged_bytes\":%" PRIu64 ",\"last_commit_ms\":%" PRId64
            ",\"last_upload_ms\":%" PRId64 ",\"generations\":%" PRIu64 ",\"snapshots\":%" PRIu64
            ",\"batches\":%" PRIu64 ",\"wals_taken\":%" PRIu64
            ",\"snapshot_pending\":%s,\"s3_outage\":%s,\"last_error\":",
            st->is_protected ? "true" : "false", st->last_committed_frame, st->last_uploaded_frame,
            st->lag_s < 0 ? 0.0 : st->lag_s, st->staged_bytes, st->last_commit_ms,
            st->last_upload_ms, st->n_generations, st->n_snapshots, st->n_batches, st->n_wals_taken,
            st->snapshot_pending ? "true" : "false", st->s3_outage ? "true" : "false");
    if (rc == 0)
        rc = status_json_string(b, st->last_error);
    if (rc == 0)
        rc = buf_append(b, "}", 1);
    c->rc = rc;
}

static void add_virtual(void *arg, const char *path, const char *db_name, uint64_t size,
                        bool size_known)
{
    struct render_ctx *c = arg;
    struct buf *b = c->out;
    int rc = c->rc;

    if (rc != 0)
        return;
    if (!c->first)
        rc = buf_append(b, ",", 1);
    c->first = false;
    if (rc == 0)
        rc = buf_append(b, "{\"path\":", 8);
    if (rc == 0)
        rc = status_json_string(b, path);
    if (rc == 0)
        rc = buf_append(b, ",\"db_name\":", 11);
    if (rc == 0)
        rc = status_json_string(b, db_name);
    if (rc == 0) {
        if (size_known)
            rc = buf_appendf(b, ",\"size\":%" PRIu64 "}", size);
        else
            rc = buf_append(b, ",\"size\":null}", 13);
    }
    c->rc = rc;
}

int status_render(const struct status_src *src, struct buf *out)
{
    struct render_ctx c = {.out = out, .rc = 0, .first = true};
    int rc = buf_append(out, "{\"version\":1,\"bucket\":", 22);

    if (rc == 0)
        rc = status_json_string(out, src->bucket);
    if (rc == 0)
        rc = buf_append(out, ",\"endpoint\":", 12);
    if (rc == 0)
        rc = status_json_string(out, src->endpoint);
    if (rc == 0 && src->backing_dir != NULL) {
        rc = buf_append(out, ",\"backing_dir\":", 15);
        if (rc == 0)
            rc = status_json_string(out, src->backing_dir);
    }
    if (rc == 0)
        rc = buf_appendf(out, ",\"durable\":%s", src->durable ? "true" : "false");
    if (rc == 0 && src->s3 != NULL) {
        struct s3_stats s;

        s3_client_stats(src->s3, &s);
        rc = buf_appendf(out,
                         ",\"s3\":{\"requests\":%" PRIu64 ",\"puts\":%" PRIu64 ",\"gets\":%" PRIu64
                         ",\"lists\":%" PRIu64 ",\"deletes\":%" PRIu64 ",\"retries\":%" PRIu64
                         ",\"failures\":%" PRIu64 ",\"bytes_up\":%" PRIu64
                         ",\"bytes_down\":%" PRIu64 "}",
                         s.n_requests, s.n_put, s.n_get, s.n_list, s.n_delete, s.n_retries,
                         s.n_failures, s.bytes_up, s.bytes_down);
    }
    if (rc == 0 && src->lazy != NULL) {
        struct lazy_stats ls;

        lazy_stats(src->lazy, &ls);
        rc = buf_appendf(out,
                         ",\"lazy\":{\"virtual\":%zu,\"restores\":%" PRIu64
                         ",\"restore_failures\":%" PRIu64 ",\"refreshes\":%" PRIu64
                         ",\"refresh_failures\":%" PRIu64 ",\"listed_ms\":%" PRId64
                         ",\"last_error\":",
                         ls.n_virtual, ls.n_restores, ls.n_restore_failures, ls.n_refreshes,
                         ls.n_refresh_failures, ls.listed_ms);
        if (rc == 0)
            rc = status_json_string(out, ls.last_error);
        if (rc == 0)
            rc = buf_append(out, "},\"virtual\":[", 13);
        if (rc == 0) {
            c.first = true;
            lazy_each(src->lazy, add_virtual, &c);
            rc = c.rc;
        }
        if (rc == 0)
            rc = buf_append(out, "]", 1);
    }
    if (rc == 0)
        rc = buf_append(out, ",\"databases\":[", 14);
    if (rc == 0 && src->repl != NULL) {
        c.first = true;
        repl_status_each(src->repl, add_db, &c);
        rc = c.rc;
    }
    if (rc == 0)
        rc = buf_append(out, "]}\n", 3);
    return rc;
}
