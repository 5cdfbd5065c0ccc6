#include "wal/replstate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/fileio.h"
#include "wal/walfmt.h"

/* Record layout (all integers big-endian):
 *   0  8  magic "BFSRST01"
 *   8  8  seq
 *  16  4  flags: 1 has_gen, 2 gen_open, 4 snap_pending, 8 changed_outside (older
 *           versions ignore it)
 *  20 16  gen
 *  36  4  page_size     40 4 salt1   44 4 salt2   48 4 seed1   52 4 seed2
 *  56  4  uploaded      60 4 chain_since_snap
 *  64  8  wal_bytes_since_snap   72 8 snap_db_size
 *  80 12  zero (reserved)
 *  92  4  CRC-32 (zlib) of bytes 0..91 */
static const char replstate_magic[8] = {'B', 'F', 'S', 'R', 'S', 'T', '0', '1'};

void replstate_encode(const struct replstate *s, uint8_t out[REPLSTATE_BYTES])
{
    memset(out, 0, REPLSTATE_BYTES);
    memcpy(out, replstate_magic, 8);
    be64_store(out + 8, s->seq);
    uint32_t flags = (s->has_gen ? 1u : 0u) | (s->gen_open ? 2u : 0u) |
                     (s->snap_pending ? 4u : 0u) | (s->changed_outside ? 8u : 0u);
    be32_store(out + 16, flags);
    memcpy(out + 20, s->gen.b, GEN_ID_BYTES);
    be32_store(out + 36, s->page_size);
    be32_store(out + 40, s->salt1);
    be32_store(out + 44, s->salt2);
    be32_store(out + 48, s->seed1);
    be32_store(out + 52, s->seed2);
    be32_store(out + 56, s->uploaded);
    be32_store(out + 60, s->chain_since_snap);
    be64_store(out + 64, s->wal_bytes_since_snap);
    be64_store(out + 72, s->snap_db_size);
    be32_store(out + 92, (uint32_t)crc32(0L, out, 92));
}

int replstate_decode(const uint8_t *p, size_t len, struct replstate *out, struct err *err)
{
    if (len != REPLSTATE_BYTES)
        return ERR(err, EBADMSG, "replstate: %zu bytes, want %d", len, REPLSTATE_BYTES);
    if (memcmp(p, replstate_magic, 8) != 0)
        return ERR(err, EBADMSG, "replstate: bad magic");
    if (be32_load(p + 92) != (uint32_t)crc32(0L, p, 92))
        return ERR(err, EBADMSG, "replstate: checksum mismatch (torn write)");
    memset(out, 0, sizeof(*out));
    out->seq = be64_load(p + 8);
    uint32_t flags = be32_load(p + 16);
    out->has_gen = (flags & 1u) != 0;
    out->gen_open = (flags & 2u) != 0;
    out->snap_pending = (flags & 4u) != 0;
    out->changed_outside = (flags & 8u) != 0;
    memcpy(out->gen.b, p + 20, GEN_ID_BYTES);
    out->page_size = be32_load(p + 36);
    out->salt1 = be32_load(p + 40);
    out->salt2 = be32_load(p + 44);
    out->seed1 = be32_load(p + 48);
    out->seed2 = be32_load(p + 52);
    out->uploaded = be32_load(p + 56);
    out->chain_since_snap = be32_load(p + 60);
    out->wal_bytes_since_snap = be64_load(p + 64);
    out->snap_db_size = be64_load(p + 72);
    return 0;
}

static int replstate_slot_path(const char *dir, int slot, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/state.%d", dir, slot);
    return (n < 0 || (size_t)n >= cap) ? ENAMETOOLONG : 0;
}

static int replstate_load_slot(const char *dir, int slot, struct replstate *out, bool *present)
{
    char path[4096];
    uint8_t *data = NULL;
    size_t len = 0;
    struct err e = {0};

    *present = false;
    if (replstate_slot_path(dir, slot, path, sizeof(path)) != 0)
        return ENAMETOOLONG;
    int rc = fileio_read_file(path, 4096, &data, &len, &e);
    if (rc == ENOENT)
        return ENOENT;
    *present = true;
    if (rc == 0)
        rc = replstate_decode(data, len, out, &e);
    else if (rc == EMSGSIZE)
        rc = EBADMSG;
    free(data);
    return rc;
}

int replstate_load(const char *dir, struct replstate *out, bool *torn_out, struct err *err)
{
    struct replstate s[2];
    bool ok[2] = {false, false};
    bool torn = false;

    for (int i = 0; i < 2; i++) {
        bool present = false;
        int rc = replstate_load_slot(dir, i, &s[i], &present);
        ok[i] = rc == 0;
        if (present && rc != 0)
            torn = true;
    }
    if (torn_out)
        *torn_out = torn;
    if (!ok[0] && !ok[1])
        return ERR(err, ENOENT, "replstate: no valid state in %s%s", dir,
                   torn ? " (damaged slots skipped)" : "");
    int pick = (!ok[0] || (ok[1] && s[1].seq > s[0].seq)) ? 1 : 0;
    *out = s[pick];
    return 0;
}

int replstate_save(const char *dir, struct replstate *s, struct err *err)
{
    char path[4096];
    uint8_t rec[REPLSTATE_BYTES];
    struct replstate next = *s;

    next.seq = s->seq + 1;
    /* seq even -> slot 0, odd -> slot 1: consecutive saves alternate slots. */
    if (replstate_slot_path(dir, (int)(next.seq & 1u), path, sizeof(path)) != 0)
        return ERR(err, ENAMETOOLONG, "replstate: path too long in %s", dir);
    replstate_encode(&next, rec);
    int rc = fileio_write_atomic(path, rec, sizeof(rec), 0600, err);
    if (rc == 0)
        s->seq = next.seq;
    return rc;
}
