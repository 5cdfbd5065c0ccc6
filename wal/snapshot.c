#include "wal/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"

/* Invariant (under mu): for every unit u with u*UNIT >= pos and u < n_units, either bit u of
 * saved is set and cow holds the unit's image bytes at the same offset, or the db file still
 * holds them. The reader advances pos only after copying a chunk out. */
struct snapshot {
    pthread_mutex_t mu;
    int db_fd;
    int cow_fd;
    char *cow_path;
    uint64_t size;
    uint64_t pos;      /* guarded by mu: image bytes [0,pos) were handed to the reader */
    uint64_t n_units;
    uint8_t *saved;    /* guarded by mu: bitmap */
    uint64_t n_saved;
    int broken;        /* guarded by mu: errno of a failed copy-on-write */
};

struct snapshot *snapshot_new(const char *db_path, uint64_t size, const char *cow_path,
                              struct err *err)
{
    struct snapshot *s = calloc(1, sizeof(*s));
    if (!s) {
        ERR(err, ENOMEM, "snapshot: out of memory");
        return NULL;
    }
    s->db_fd = -1;
    s->cow_fd = -1;
    pthread_mutex_init(&s->mu, NULL);
    s->size = size;
    s->n_units = (size + SNAPSHOT_UNIT - 1) / SNAPSHOT_UNIT;
    s->saved = calloc((size_t)(s->n_units / 8 + 1), 1);
    s->cow_path = strdup(cow_path);
    if (!s->saved || !s->cow_path) {
        ERR(err, ENOMEM, "snapshot: out of memory");
        goto fail;
    }
    s->db_fd = open(db_path, O_RDONLY | O_CLOEXEC);
    if (s->db_fd < 0) {
        ERR(err, errno, "snapshot: open %s: %s", db_path, errno_name(errno));
        goto fail;
    }
    s->cow_fd = open(cow_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (s->cow_fd < 0) {
        ERR(err, errno, "snapshot: create %s: %s", cow_path, errno_name(errno));
        goto fail;
    }
    return s;
fail:
    snapshot_free(s);
    return NULL;
}

static bool snapshot_is_saved(const struct snapshot *s, uint64_t u)
{
    return (s->saved[u / 8] >> (u % 8)) & 1u;
}

int snapshot_cow(struct snapshot *s, uint64_t off, uint64_t len, struct err *err)
{
    uint8_t unit[SNAPSHOT_UNIT];
    int rc = 0;

    if (!s || len == 0)
        return 0;
    pthread_mutex_lock(&s->mu);
    uint64_t end = off + len;
    if (end > s->size)
        end = s->size;
    uint64_t start = off > s->pos ? off : s->pos;
    if (start >= end || s->broken)
        goto out;
    for (uint64_t u = start / SNAPSHOT_UNIT; u * SNAPSHOT_UNIT < end; u++) {
        if (snapshot_is_saved(s, u))
            continue;
        uint64_t uoff = u * SNAPSHOT_UNIT;
        size_t want = (size_t)(s->size - uoff < SNAPSHOT_UNIT ? s->size - uoff : SNAPSHOT_UNIT);
        size_t got = 0;
        rc = fileio_pread_full(s->db_fd, unit, want, uoff, &got);
        if (rc == 0 && got < want)
            memset(unit + got, 0, want - got); /* file already shorter: image has zeros */
        if (rc == 0)
            rc = fileio_pwrite_all(s->cow_fd, unit, want, uoff);
        if (rc != 0) {
            s->broken = rc;
            ERR(err, rc, "snapshot: copy-on-write at %llu: %s", (unsigned long long)uoff,
                errno_name(rc));
            goto out;
        }
        s->saved[u / 8] |= (uint8_t)(1u << (u % 8));
        s->n_saved++;
    }
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int snapshot_read(struct snapshot *s, uint8_t *buf, size_t cap, size_t *n_out, struct err *err)
{
    int rc = 0;

    *n_out = 0;
    cap -= cap % SNAPSHOT_UNIT;
    if (cap == 0)
        return ERR(err, EINVAL, "snapshot: read buffer below %u bytes", SNAPSHOT_UNIT);
    pthread_mutex_lock(&s->mu);
    if (s->broken == ECANCELED) {
        rc = ERR(err, ECANCELED, "snapshot: cancelled (abandoned by its owner)");
        goto out;
    }
    if (s->broken) {
        rc = ERR(err, EIO, "snapshot: copy-on-write failed earlier (%s)", errno_name(s->broken));
        goto out;
    }
    uint64_t left = s->size - s->pos;
    size_t n = (size_t)(left < cap ? left : cap);
    size_t done = 0;
    while (done < n) {
        uint64_t uoff = s->pos + done;
        uint64_t u = uoff / SNAPSHOT_UNIT;
        size_t want = n - done < SNAPSHOT_UNIT ? n - done : SNAPSHOT_UNIT;
        /* Gather a run of units with the same source into one pread. */
        bool from_cow = snapshot_is_saved(s, u);
        while (done + want < n && snapshot_is_saved(s, u + want / SNAPSHOT_UNIT) == from_cow) {
            size_t more = n - done - want < SNAPSHOT_UNIT ? n - done - want : SNAPSHOT_UNIT;
            want += more;
        }
        size_t got = 0;
        rc = fileio_pread_full(from_cow ? s->cow_fd : s->db_fd, buf + done, want, uoff, &got);
        if (rc != 0) {
            rc = ERR(err, rc, "snapshot: read at %llu: %s", (unsigned long long)uoff,
                     errno_name(rc));
            goto out;
        }
        if (got < want)
            memset(buf + done + got, 0, want - got); /* cannot happen for cow; db shrank */
        done += want;
    }
    s->pos += n;
    *n_out = n;
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

uint64_t snapshot_size(const struct snapshot *s)
{
    return s->size;
}

uint64_t snapshot_pos(struct snapshot *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t p = s->pos;
    pthread_mutex_unlock(&s->mu);
    return p;
}

uint64_t snapshot_cow_units(struct snapshot *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->n_saved;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void snapshot_cancel(struct snapshot *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->broken = ECANCELED;
    pthread_mutex_unlock(&s->mu);
}

void snapshot_free(struct snapshot *s)
{
    if (!s)
        return;
    if (s->db_fd >= 0)
        close(s->db_fd);
    if (s->cow_fd >= 0)
        close(s->cow_fd);
    if (s->cow_path)
        unlink(s->cow_path);
    free(s->cow_path);
    free(s->saved);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
