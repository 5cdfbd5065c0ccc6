/* wal/replicator.c - the replication engine (contract in replicator.h).
 *
 * Staging layout (per database, <staging_dir>/db-<sha256(db_name)[0..16] hex>/, mode 0700):
 *   name                  the db_name (informational)
 *   state.0, state.1      persisted state (wal/replstate.h)
 *   tombstone             pending tombstone upload (8 bytes, the layout encoding)
 *   <gen>/.dep            pending .dep upload (16 bytes)
 *   <gen>/.meta           pending .meta upload (12 bytes)
 *   <gen>/<first>-<last>-<ts>.seg   a staged batch: raw WAL frames first..last, whole
 *                         transactions; compressed at upload into <first>-<last>-<ts>.<ext>
 *   <gen>/<first>.pre.tmp a batch being copied (renamed to .seg once synced)
 *   <gen>/<first>-<last>-<ts>.<skip>.<ps>.<ck>.<salts>.<l|b>.wseg   a staged batch that is a
 *                         whole former -wal: its frames skip+1.. are frames first..last, to be
 *                         rechained at upload (see "stolen WALs")
 *   <gen>/<first>-<last>-<ts>.merge   empty: the queued segments from <first> to <last> go up
 *                         as one object named by it (see "merged uploads" at the uploader)
 *   <gen>/snap.cow        copy-on-write side file of a running snapshot
 *   <gen>/db.<ext>        a finished compressed snapshot waiting for its upload
 * Every pending object is a file, so a restart rebuilds the upload queue from the directory
 * (oldest generation first; .dep, .meta, then batches by first frame).
 *
 * Threads: stager (cuts batches when due, copies frames ahead, persists state), uploaders
 *   (n_uploaders; one item of one database at a time, in queue order per database),
 *   snapshotter (reads, compresses and uploads snapshots). Hooks run on the caller's thread.
 * Locks:   r->mu (db list, scheduling flags) -> db->stage_mu (copying frames out of the -wal,
 *   replacing wal_fd) -> db->gen_mu (the -wal decoder, which begins generations on the hot
 *   path, against the bucket check, which restarts them) -> db->snap_mu (running snapshot
 *   pointer) -> db->mu (everything else of the db). db->persist_mu only around state saves
 *   (taken with nothing else held but stage_mu). No db->mu or r->mu is held across I/O
 *   except the short file writes of a new generation. repl_db objects live until repl_free
 *   (pointers stay valid for the threads). */
#include "wal/replicator.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "wal/decoder.h"
#include "wal/layout.h"
#include "wal/replstate.h"
#include "wal/snapshot.h"
#include "wal/walfmt.h"

#define REPL_PATH_MAX 4096
#define REPL_COPY_CHUNK (1024u * 1024u)
#define REPL_SNAP_CHUNK (256u * 1024u)
#define REPL_BACKOFF_MIN_MS 250u
#define REPL_BACKOFF_MAX_MS 10000u
#define REPL_IDLE_WAIT_MS 200u
/* A database file that changes outside any WAL generation (copied in with cp, say) is
 * snapshotted once it has not changed for this long (see watch_check). */
#define REPL_SETTLE_MS 2000
#define REPL_WATCH_EVERY_MS 500

/* ITEM_LEASE is never queued: the uploader renews the lease of a db with it. */
enum item_kind { ITEM_VERIFY, ITEM_TOMBSTONE, ITEM_DEP, ITEM_META, ITEM_SEG, ITEM_LEASE };

struct item {
    struct item *next;
    enum item_kind kind;
    struct gen_id gen;
    uint32_t first, last; /* ITEM_SEG */
    uint64_t ts;
    /* ITEM_SEG: the head of a merged upload whose marker is on disk (see "merged uploads"):
     * frames first..merge_last go up as "<first>-<merge_last>-<merge_ts>". 0: none yet. */
    uint32_t merge_last;
    uint64_t merge_ts;
    uint64_t bytes;
    uint64_t lsn_end;  /* db lsn after the last frame (0: from a previous run) */
    int64_t commit_ms; /* oldest commit in the batch */
    bool has_expect;   /* ITEM_VERIFY: the generation we expect to be the bucket's newest */
    struct gen_id expect;
    /* ITEM_SEG in a stolen WAL (.wseg, see "stolen WALs"): frame first is the file's frame
     * wal_skip + 1; shipped rechained from ck_in with salts, in the byte order big_endian. */
    bool wal_src, big_endian;
    uint32_t wal_skip, page_size;
    uint32_t ck_in[2], salt[2];
};

/* What stat says of a file, to tell whether it changed between two looks. */
struct file_sig {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct hdrinfo {
    uint32_t page_size, salt1, salt2, seed1, seed2;
    bool big_endian; /* checksum byte order (not compared: follows from the magic) */
};

struct repl_db {
    struct repl_db *next; /* r->dbs, r->mu */
    struct replicator *r;
    int refs;            /* r->mu */
    bool retired;        /* r->mu: unlinked / renamed away */
    bool busy;           /* r->mu: an uploader works on the queue head */
    int64_t retry_at_ms; /* r->mu */
    unsigned backoff_ms; /* r->mu */

    char *name, *db_path, *wal_path, *dir;

    pthread_mutex_t stage_mu, gen_mu, snap_mu, mu, persist_mu;
    pthread_cond_t cv; /* with mu: lsn_uploaded grew, snapshot finished */

    /* Decoder and -wal fd: the hook caller's thread (serialised); wal_fd replaced under
     * stage_mu and read by the stager under stage_mu. */
    struct wal_decoder *dec;
    int wal_fd;

    /* Guarded by mu. */
    bool has_gen, gen_open;
    bool gen_has_dep; /* gen's .dep was written */
    struct gen_id gen;
    char gen_str[GEN_ID_STR_LEN + 1];
    struct hdrinfo gh;    /* header of gen's first WAL (its .meta, the salts it ships) */
    /* A generation outlives WAL restarts (see cycle_continue_locked): frame n of the current
     * WAL is frame cyc_base + n of gen, whose header is ch. cyc_base 0: ch == gh. */
    struct hdrinfo ch;
    uint32_t cyc_base;
    bool has_parent_hint; /* parent of the next generation (else: gen, when has_gen) */
    struct gen_id parent_hint;
    bool force_snapshot;
    bool renamed_in; /* mu: the handle repl_db_renamed made (see gen_begin_unbacked) */
    /* The db file written outside any WAL generation (see watch_check): wsig is the file as
     * last seen (at open, then by the stager), wchanged says the bucket does not hold it as it
     * is (only ever set with watch), wsince_ms when it last changed. */
    bool watch, wchanged;
    struct file_sig wsig;
    /* wal_cached only (see repl_conf): synced_upto, the generation's frames committed when
     * the app last fsynced the -wal; unsynced, a WAL restarted with commits after that, so
     * frames may never have reached us (see dec_on_restart). Sticky until a snapshot taken
     * with no WAL open. */
    uint32_t synced_upto;
    bool unsynced, unsynced_warned;
    /* The WAL header's checkpoint sequence: 0 in a new -wal, +1 at every restart. A gap means
     * whole WALs came and went unseen. ckpt_known: ckpt_seq is the current WAL's; else
     * wal_fresh: the -wal was absent or empty, so its first header must say 0. (mu) */
    bool ckpt_known, wal_fresh;
    uint32_t ckpt_seq;
    int64_t wsince_ms, wnext_ms; /* wnext_ms: the stager's next look */
    /* The next generation's link to its parent is not known to be continuous (no parent,
     * divergence, lost frames, unclean restart, rename): its snapshot is its only base, so it
     * may displace a running snapshot that is not (see snap_start). */
    bool need_base;
    uint32_t committed, staged, uploaded;
    /* Shipped checksum chain after frame `staged` (staged_ck_ok: known). Staging rewrites
     * the frames' salts/checksums from it once a rechained commit was seen (rechain: SQLite
     * 3.40's savepoint bug, decoder.h), so shipped batches always verify on restore. */
    bool staged_ck_ok, rechain;
    bool chain_broken; /* unstaged frames were lost: lag until the next snapshot */
    bool cyc_rechained; /* the current WAL had a rechained commit (its stored chain is broken) */
    /* copy_frames' buffer (stage_mu), kept while the db has frames to stage: a fresh 1 MiB
     * malloc per copy is an mmap whose pages the kernel faults in and zeroes each time,
     * hundreds of times a second under load. Freed when the stager's cut leaves nothing
     * pending or the -wal goes, so idle databases hold none. */
    uint8_t *copy_buf;
    size_t copy_cap;
    uint32_t staged_ck[2];
    uint32_t *cuts; /* commit ends to cut batches at (batch_max_frames) */
    size_t n_cuts, cap_cuts;
    int64_t pending_since_ms; /* oldest unstaged commit, 0 = none */
    bool urgent;              /* cut now (flush, durable fsync) */
    uint64_t hurry_lsn;       /* a flush or durable fsync waits for this lsn: upload at once */
    uint64_t lsn_committed, lsn_staged, lsn_uploaded;
    struct item *q_head, *q_tail;
    uint64_t staged_bytes;
    bool outage;
    int64_t outage_since_ms; /* first failure of the current outage */
    unsigned outage_retries; /* failed retries in it (after its first failure) */
    char last_error[512];
    struct replstate st; /* persisted fields mirror; snapshot bookkeeping lives here */
    bool state_dirty;
    bool journal_wal; /* header bytes 18..19 == 2 or a WAL seen */
    bool journal_known;
    bool journal_warned;
    int64_t last_commit_ms, last_upload_ms;
    uint64_t n_generations, n_snapshots, n_batches, n_wals_taken;
    /* snapshot bookkeeping (mu): snapshot thread works on it */
    bool snap_running;      /* snap (below) is being read */
    bool snap_upload;       /* finished <gen>/db.<ext> files wait for upload (any gen) */
    bool snap_essential;    /* the running snapshot is its generation's only base */
    struct gen_id snap_gen; /* generation of the running snapshot */
    uint64_t snap_size;

    /* Guarded by snap_mu: the running copy-on-write image; snap_building: the snapshot
     * thread reads it (then only that thread frees it: others snapshot_cancel and detach). */
    struct snapshot *snap;
    bool snap_building;

    /* Lease on "<db_name>.lease" (see the lease section), guarded by mu. */
    bool lease_held;    /* ours in the bucket; renewed at lease_renew_at_ms */
    bool lease_blocked; /* another writer holds it: nothing of this db is uploaded */
    bool lease_idle;    /* given up after lease_ttl_ms without a commit (see lease_renew) */
    struct gen_id lease_idle_gen; /* the bucket's newest (ours) when it was given up */
    int64_t lease_taken_ms;
    int64_t lease_renew_at_ms;
    char lease_holder[256]; /* who holds it when blocked */
};

struct replicator {
    struct repl_conf conf;
    char *staging_dir;
    struct s3_client *s3;

    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* uploaders */
    pthread_cond_t stage_cv; /* stager */
    pthread_cond_t snap_cv;  /* snapshotter */
    struct repl_db *dbs;     /* mu */
    bool stop;               /* mu */
    bool started;
    pthread_t stager, snapper;
    pthread_t *uploaders;
    unsigned n_uploaders;
    char owner_id[33];    /* this staging area's lease identity (<staging_dir>/owner) */
    char owner_desc[400]; /* "id=... host=... pid=... staging=..." for the lease object */
};

/* ------------------------------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void deadline_ts(int64_t at_ms, struct timespec *ts)
{
    ts->tv_sec = (time_t)(at_ms / 1000);
    ts->tv_nsec = (long)(at_ms % 1000) * 1000000L;
}

/* Does the file name nm end in suffix, with something before it? */
static bool name_has_suffix(const char *nm, const char *suffix)
{
    size_t l = strlen(nm), n = strlen(suffix);
    return l > n && strcmp(nm + l - n, suffix) == 0;
}

static int path_join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    return (n < 0 || (size_t)n >= cap) ? ENAMETOOLONG : 0;
}

static int gen_path(const struct repl_db *db, const struct gen_id *g, const char *leaf, char *out,
                    size_t cap)
{
    char gs[GEN_ID_STR_LEN + 1];
    gen_id_format(g, gs);
    int n = leaf ? snprintf(out, cap, "%s/%s/%s", db->dir, gs, leaf)
                 : snprintf(out, cap, "%s/%s", db->dir, gs);
    return (n < 0 || (size_t)n >= cap) ? ENAMETOOLONG : 0;
}

static void seg_name(uint32_t first, uint32_t last, uint64_t ts, char *out, size_t cap)
{
    snprintf(out, cap, "%012" PRIu32 "-%012" PRIu32 "-%" PRIu64 ".seg", first, last, ts);
}

/* The staged file of segment x: "<first>-<last>-<ts>.seg", or for a stolen WAL
 * "<first>-<last>-<ts>.<skip>.<page size>.<chain in>.<salts>.<l|b>.wseg". */
static void seg_item_name(const struct item *x, char *out, size_t cap)
{
    if (!x->wal_src) {
        seg_name(x->first, x->last, x->ts, out, cap);
        return;
    }
    snprintf(out, cap,
             "%012" PRIu32 "-%012" PRIu32 "-%" PRIu64 ".%" PRIu32 ".%" PRIu32 ".%08" PRIx32
             "%08" PRIx32 ".%08" PRIx32 "%08" PRIx32 ".%c.wseg",
             x->first, x->last, x->ts, x->wal_skip, x->page_size, x->ck_in[0], x->ck_in[1],
             x->salt[0], x->salt[1], x->big_endian ? 'b' : 'l');
}

static void merge_name(uint32_t first, uint32_t last, uint64_t ts, char *out, size_t cap)
{
    snprintf(out, cap, "%012" PRIu32 "-%012" PRIu32 "-%" PRIu64 ".merge", first, last, ts);
}

/* A flush or a durable fsync waits for lsn (mu held): cut now, and upload without holding
 * for a merged batch (see "merged uploads"). */
static void db_hurry_locked(struct repl_db *db, uint64_t lsn)
{
    db->urgent = true;
    if (db->hurry_lsn < lsn)
        db->hurry_lsn = lsn;
}

/* Unlinks the staged segment x in its generation directory gdir and, for the head of a
 * merged upload, its marker after it (see "merged uploads"). */
static void seg_files_unlink(const char *gdir, const struct item *x)
{
    char p[REPL_PATH_MAX], nm[160];
    seg_item_name(x, nm, sizeof(nm));
    if (path_join(p, sizeof(p), gdir, nm) == 0)
        unlink(p);
    if (x->merge_last) {
        merge_name(x->first, x->merge_last, x->merge_ts, nm, sizeof(nm));
        if (path_join(p, sizeof(p), gdir, nm) == 0)
            unlink(p);
    }
}

static bool file_sig_of(const char *path, struct file_sig *s)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return false;
    *s = (struct file_sig){.dev = sb.st_dev, .ino = sb.st_ino, .size = sb.st_size,
                           .mtime = sb.st_mtim, .ctime = sb.st_ctim};
    return true;
}

static bool file_sig_eq(const struct file_sig *a, const struct file_sig *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static void db_set_error(struct repl_db *db, const struct err *e)
{
    /* mu held */
    snprintf(db->last_error, sizeof(db->last_error), "%s", e->msg[0] ? e->msg : "error");
}

static void item_free_list(struct item *it)
{
    while (it) {
        struct item *n = it->next;
        free(it);
        it = n;
    }
}

static struct item *item_new(enum item_kind kind, const struct gen_id *g)
{
    struct item *it = calloc(1, sizeof(*it));
    if (it) {
        it->kind = kind;
        if (g)
            it->gen = *g;
    }
    return it;
}

static void q_push(struct repl_db *db, struct item *it)
{
    /* mu held */
    it->next = NULL;
    if (db->q_tail)
        db->q_tail->next = it;
    else
        db->q_head = it;
    db->q_tail = it;
}

static void q_push_front(struct repl_db *db, struct item *it)
{
    it->next = db->q_head;
    db->q_head = it;
    if (!db->q_tail)
        db->q_tail = it;
}

static void wake_uploaders(struct replicator *r)
{
    pthread_mutex_lock(&r->mu);
    pthread_cond_broadcast(&r->work_cv);
    pthread_mutex_unlock(&r->mu);
}

/* ---- persisted state --------------------------------------------------------------------- */

static void db_persist(struct repl_db *db)
{
    struct replstate st;
    struct err e = {0};

    pthread_mutex_lock(&db->persist_mu);
    pthread_mutex_lock(&db->mu);
    if (!db->state_dirty || db->dir == NULL) {
        pthread_mutex_unlock(&db->mu);
        pthread_mutex_unlock(&db->persist_mu);
        return;
    }
    db->state_dirty = false;
    db->st.has_gen = db->has_gen;
    db->st.gen_open = db->gen_open;
    if (db->has_gen) {
        db->st.gen = db->gen;
        db->st.page_size = db->gh.page_size;
        db->st.salt1 = db->gh.salt1;
        db->st.salt2 = db->gh.salt2;
        db->st.seed1 = db->gh.seed1;
        db->st.seed2 = db->gh.seed2;
    }
    db->st.uploaded = db->uploaded;
    db->st.snap_pending = db->snap_running || db->snap_upload || db->chain_broken || db->need_base;
    db->st.changed_outside = db->wchanged;
    st = db->st;
    pthread_mutex_unlock(&db->mu);
    int rc = replstate_save(db->dir, &st, &e);
    pthread_mutex_lock(&db->mu);
    if (rc == 0) {
        db->st.seq = st.seq;
    } else {
        db->state_dirty = true;
        db_set_error(db, &e);
        LOG_WARN("replicator: state save failed db=%s err=%s", db->name, e.msg);
    }
    pthread_mutex_unlock(&db->mu);
    pthread_mutex_unlock(&db->persist_mu);
}

/* ---- generations ------------------------------------------------------------------------- */

static int write_small(const char *path, const void *p, size_t len, struct err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return ERR(err, errno, "replicator: create %s: %s", path, errno_name(errno));
    int rc = fileio_write_all(fd, p, len);
    close(fd);
    if (rc)
        return ERR(err, rc, "replicator: write %s: %s", path, errno_name(rc));
    return 0;
}

/* Detaches and drops the running snapshot (snap_mu and mu held): freed here, or cancelled
 * when the snapshot thread is reading it (it frees it and finds it detached). Its
 * generation gets no snapshot object: never a db.<ext> of a state other than its start. */
static void snap_abandon_locked(struct repl_db *db)
{
    if (!db->snap)
        return;
    if (db->snap_building)
        snapshot_cancel(db->snap);
    else
        snapshot_free(db->snap);
    db->snap = NULL;
    db->snap_running = false;
    memset(&db->snap_gen, 0, sizeof(db->snap_gen)); /* no snapshot of it will exist */
    db->state_dirty = true;
}

/* Starts a snapshot of the db file as it is now for generation g. mu NOT held (takes snap_mu
 * then mu). One runs at a time: a running one is abandoned for an essential one (g's only
 * base, see need_base) - the newest generation must restore exactly; otherwise g goes
 * without and the next generation tries again. */
static void snap_start(struct repl_db *db, const struct gen_id *g, bool essential)
{
    char cow[REPL_PATH_MAX];
    struct err e = {0};
    struct stat sb;
    uint64_t size = 0;

    if (stat(db->db_path, &sb) == 0)
        size = (uint64_t)sb.st_size;
    pthread_mutex_lock(&db->snap_mu);
    if (db->snap != NULL) {
        pthread_mutex_lock(&db->mu);
        if (!essential) {
            db->force_snapshot = true;
            pthread_mutex_unlock(&db->mu);
            pthread_mutex_unlock(&db->snap_mu);
            return;
        }
        char os[GEN_ID_STR_LEN + 1], ns[GEN_ID_STR_LEN + 1];
        gen_id_format(&db->snap_gen, os);
        gen_id_format(g, ns);
        if (db->snap_essential)
            LOG_ERR("snapshot: abandoned db=%s gen=%s for the newer gen=%s: generation %s "
                    "has no base and cannot be restored (newer ones can)",
                    db->name, os, ns, os);
        else
            LOG_INFO("snapshot: abandoned db=%s gen=%s for gen=%s (it restores through its "
                     "parent chain)",
                     db->name, os, ns);
        snap_abandon_locked(db);
        pthread_mutex_unlock(&db->mu);
    }
    struct snapshot *s = NULL;
    if (gen_path(db, g, "snap.cow", cow, sizeof(cow)) == 0)
        s = snapshot_new(db->db_path, size, cow, &e);
    db->snap = s;
    pthread_mutex_lock(&db->mu);
    if (s) {
        db->snap_running = true;
        db->snap_essential = essential;
        db->need_base = false;
        db->snap_gen = *g;
        db->snap_size = size;
        db->st.chain_since_snap = 1;
        db->st.wal_bytes_since_snap = 0;
        db->st.snap_db_size = size;
        db->force_snapshot = false;
        db->chain_broken = false; /* the snapshot (pending until uploaded) restores the chain */
    } else {
        db->force_snapshot = true;
        db->need_base |= essential;
        db_set_error(db, &e);
        LOG_WARN("snapshot: cannot start db=%s err=%s", db->name, e.msg);
    }
    db->state_dirty = true;
    pthread_mutex_unlock(&db->mu);
    pthread_mutex_unlock(&db->snap_mu);
    if (s) {
        pthread_mutex_lock(&db->r->mu);
        pthread_cond_broadcast(&db->r->snap_cv);
        pthread_mutex_unlock(&db->r->mu);
    }
}

/* Would a new generation take a snapshot by the policy (force, chain length, WAL shipped since
 * the last one)? mu held. */
static bool snap_wanted_locked(const struct repl_db *db)
{
    uint32_t max_gens = db->r->conf.snapshot_max_gens;
    uint64_t pct = db->r->conf.snapshot_wal_pct;
    /* The floor keeps a small database under heavy writes from compressing and uploading
     * itself whole again and again; restoring it replays at most that much WAL. */
    uint64_t floor = (uint64_t)db->r->conf.snapshot_wal_min_mib << 20;
    uint64_t since = db->st.wal_bytes_since_snap;
    return db->force_snapshot || db->st.chain_since_snap + 1 >= max_gens ||
           (since * 100 > db->st.snap_db_size * pct && since > floor);
}

/* Begins a new generation fed by the WAL whose header is h. mu NOT held. force: snapshot. */
static int gen_begin(struct repl_db *db, const struct hdrinfo *h, struct err *err)
{
    struct gen_id g;
    struct timespec ts;
    char path[REPL_PATH_MAX];
    uint8_t meta[LAYOUT_META_BYTES], dep[LAYOUT_DEP_BYTES];
    int rc;

    /* newer than the generation it follows, even one begun in the same millisecond (a
     * snapshot-only one racing the WAL's): the newest must list first */
    pthread_mutex_lock(&db->mu);
    bool after = db->has_parent_hint || db->has_gen;
    struct gen_id prev = db->has_parent_hint ? db->parent_hint : db->gen;
    pthread_mutex_unlock(&db->mu);
    clock_gettime(CLOCK_REALTIME, &ts);
    rc = after ? gen_id_new_after(&ts, &prev, &g, err) : gen_id_new(&ts, &g, err);
    if (rc)
        return rc;
    if ((rc = gen_path(db, &g, NULL, path, sizeof(path))) != 0)
        return ERR(err, rc, "replicator: staging path too long");
    if ((rc = fileio_mkdir_p(path, REPL_STATE_DIR_MODE, err)) != 0)
        return rc;
    struct file_sig sig;
    bool have_sig = file_sig_of(db->db_path, &sig);

    pthread_mutex_lock(&db->mu);
    bool has_parent = db->has_parent_hint || db->has_gen;
    struct gen_id parent = db->has_parent_hint ? db->parent_hint : db->gen;
    /* a watched file changed since the bucket got it (see watch_check), and the stager has
     * not taken it yet: the parent does not hold what this WAL starts from */
    bool raw = db->watch && (db->wchanged || !have_sig || !file_sig_eq(&sig, &db->wsig));
    bool essential = !has_parent || db->need_base || db->chain_broken || raw;
    bool want_snap = essential || snap_wanted_locked(db);
    pthread_mutex_unlock(&db->mu);

    struct item *idep = NULL, *imeta = item_new(ITEM_META, &g);
    if (!imeta)
        return ERR(err, ENOMEM, "replicator: out of memory");
    if (has_parent) {
        layout_dep_encode(&parent, dep);
        gen_path(db, &g, ".dep", path, sizeof(path));
        rc = write_small(path, dep, sizeof(dep), err);
        idep = item_new(ITEM_DEP, &g);
        if (!rc && !idep)
            rc = ERR(err, ENOMEM, "replicator: out of memory");
    }
    struct gen_meta m = {.page_size = h->page_size, .cksum1 = h->seed1, .cksum2 = h->seed2};
    layout_meta_encode(&m, meta);
    gen_path(db, &g, ".meta", path, sizeof(path));
    if (!rc)
        rc = write_small(path, meta, sizeof(meta), err);
    if (rc) {
        free(idep);
        free(imeta);
        return rc;
    }

    pthread_mutex_lock(&db->mu);
    db->has_gen = true;
    db->gen_open = true;
    db->gen = g;
    gen_id_format(&g, db->gen_str);
    db->gh = *h;
    db->ch = *h;
    db->cyc_base = 0;
    db->has_parent_hint = false;
    db->gen_has_dep = has_parent;
    db->committed = db->staged = db->uploaded = db->synced_upto = 0;
    db->staged_ck[0] = h->seed1;
    db->staged_ck[1] = h->seed2;
    db->staged_ck_ok = true;
    db->rechain = false;
    db->n_cuts = 0;
    db->pending_since_ms = 0;
    if (!want_snap)
        db->st.chain_since_snap++;
    db->n_generations++;
    db->journal_wal = true;
    db->journal_known = true;
    /* gen_begin_unbacked arms it again; unsynced: only a snapshot with no WAL open settles it */
    db->watch = db->wchanged = db->unsynced;
    if (idep)
        q_push(db, idep);
    q_push(db, imeta);
    db->state_dirty = true;
    char ps[GEN_ID_STR_LEN + 1] = "";
    if (has_parent)
        gen_id_format(&parent, ps);
    pthread_mutex_unlock(&db->mu);
    LOG_INFO("replicator: new generation db=%s gen=%s parent=%s snapshot=%s", db->name, db->gen_str,
             has_parent ? ps : "none", want_snap ? "yes" : "no");
    if (want_snap)
        snap_start(db, &g, essential);
    return 0;
}

/* ---- staging ----------------------------------------------------------------------------- */

/* fsyncs <gen>/.meta and <gen>/.dep (written without fsync on the hot path by gen_begin)
 * and the directory holding <gen>/, before the generation's first segment is named. */
static void sync_gen_smalls(struct repl_db *db, const struct gen_id *g)
{
    static const char *const leaves[] = {".meta", ".dep"};
    char path[REPL_PATH_MAX];
    for (size_t i = 0; i < sizeof(leaves) / sizeof(leaves[0]); i++) {
        if (gen_path(db, g, leaves[i], path, sizeof(path)) != 0)
            continue;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (fsync(fd) != 0)
            LOG_WARN("replicator: fsync %s failed: %s", path, errno_name(errno));
        close(fd);
    }
    fileio_fsync_dir(db->dir, NULL); /* the generation directory's own entry */
}

/* ---- copying frames into a segment ------------------------------------------------------
 * stage_batch copies committed frames out of the -wal into <gen>/<from>.pre.tmp, syncs it and
 * renames it to the segment's name. A restart deletes any *.tmp (db_rebuild_queue). At a WAL
 * restart the -wal is usually taken whole instead (see "stolen WALs"). */

/* The generation directory goes when it is empty (after the snapshot upload or at startup)
 * while the generation may still be open: makes it again. Whether it exists now. */
static bool gen_dir_remake(const struct repl_db *db, const struct gen_id *g)
{
    char gdir[REPL_PATH_MAX];
    return gen_path(db, g, NULL, gdir, sizeof(gdir)) == 0 &&
           fileio_mkdir_p(gdir, REPL_STATE_DIR_MODE, NULL) == 0;
}

/* What stage_batch reads of the db under mu. */
struct copy_ctx {
    struct gen_id gen;
    struct hdrinfo gh;
    uint32_t cyc_base;
    int wal_fd;
    bool rechain, ck_ok;
    uint32_t ck[2]; /* shipped chain after the last staged frame (ck_ok) */
};

static void copy_ctx_locked(const struct repl_db *db, struct copy_ctx *c)
{
    c->gen = db->gen;
    c->gh = db->gh;
    c->cyc_base = db->cyc_base;
    c->wal_fd = db->wal_fd;
    c->rechain = db->rechain;
    c->ck_ok = db->staged_ck_ok;
    c->ck[0] = db->staged_ck[0];
    c->ck[1] = db->staged_ck[1];
}

/* The buffer for copying whole frames of page size ps in chunks (copy_frames); stage_mu held.
 * NULL when out of memory. */
static uint8_t *copy_buf_get(struct repl_db *db, uint32_t ps)
{
    size_t want = REPL_COPY_CHUNK > wal_frame_size(ps) ? REPL_COPY_CHUNK : wal_frame_size(ps);
    if (db->copy_cap < want) {
        uint8_t *b = malloc(want);
        if (!b)
            return NULL;
        free(db->copy_buf);
        db->copy_buf = b;
        db->copy_cap = want;
    }
    return db->copy_buf;
}

/* Frees the copy buffer of a database with nothing left to copy (stage_mu held). */
static void copy_buf_release(struct repl_db *db)
{
    free(db->copy_buf);
    db->copy_buf = NULL;
    db->copy_cap = 0;
}

/* Copies frames from..to (from: the first unstaged) of the -wal to the start of fd through buf,
 * rechained when the generation needs it; ck: the shipped chain after frame to. stage_mu held. */
static int copy_frames(struct repl_db *db, const struct copy_ctx *c, uint32_t from, uint32_t to,
                       int fd, uint8_t *buf, uint32_t ck[2], struct err *err)
{
    uint32_t ps = c->gh.page_size;
    uint64_t fsize = wal_frame_size(ps);
    uint64_t chunk = REPL_COPY_CHUNK / fsize * fsize; /* whole frames per chunk */
    if (chunk == 0)
        chunk = fsize;
    if (c->rechain && !c->ck_ok) {
        /* Cannot happen with the decoder's rules (a rechained commit is always seen live, after
         * the commit before it); refuse rather than ship frames that fail on restore. */
        return ERR(err, EIO,
                   "replicator: checksum chain before frame %" PRIu32 " unknown db=%s: "
                   "cannot rechain",
                   from, db->name);
    }
    ck[0] = c->ck[0];
    ck[1] = c->ck[1];
    for (uint32_t first = from; first <= to;) {
        uint32_t n = to - first + 1;
        if ((uint64_t)n * fsize > chunk)
            n = (uint32_t)(chunk / fsize);
        size_t want = (size_t)((uint64_t)n * fsize), got = 0;
        int rc = fileio_pread_full(c->wal_fd, buf, want, wal_frame_offset(ps, first - c->cyc_base),
                                   &got);
        if (rc == 0 && got < want)
            rc = EIO;
        if (rc)
            return ERR(err, rc, "replicator: read -wal frames %" PRIu32 "-%" PRIu32 " db=%s: %s",
                       first, to, db->name,
                       rc == EIO ? "file shorter than committed frames" : errno_name(rc));
        if (c->rechain) {
            wal_frames_rechain(c->gh.big_endian, c->gh.salt1, c->gh.salt2, ps, buf, n, ck);
        } else {
            /* the stored chain is the shipped chain: remember where it ends */
            const uint8_t *lf = buf + (size_t)(n - 1) * fsize;
            ck[0] = be32_load(lf + 16);
            ck[1] = be32_load(lf + 20);
        }
        rc = fileio_pwrite_all(fd, buf, want, (uint64_t)(first - from) * fsize);
        if (rc)
            return ERR(err, rc, "replicator: write the next segment of db=%s: %s", db->name,
                       errno_name(rc));
        first += n;
    }
    return 0;
}

/* Queues the segment it, just staged (its file durable, named), whose frames chain to ck after
 * its last; used_cut: it ended at the first cut. Returns whether it caught up with the commits. */
static bool seg_queue(struct repl_db *db, struct item *it, const uint32_t ck[2], bool used_cut)
{
    pthread_mutex_lock(&db->mu);
    bool caught_up = false;
    if (gen_id_eq(&it->gen, &db->gen)) {
        caught_up = db->committed <= it->last;
        db->staged = it->last;
        db->staged_ck[0] = ck[0];
        db->staged_ck[1] = ck[1];
        db->staged_ck_ok = true;
        if (used_cut && db->n_cuts > 0) {
            memmove(db->cuts, db->cuts + 1, (db->n_cuts - 1) * sizeof(*db->cuts));
            db->n_cuts--;
        }
        /* Commits that arrived while this batch was staged start the next interval now
         * (keeping the old start would stage them at once: a PUT per staging, not per
         * interval). */
        db->pending_since_ms = db->committed <= db->staged ? 0 : now_ms();
    }
    db->lsn_staged += it->last - it->first + 1;
    it->lsn_end = db->lsn_staged;
    db->staged_bytes += it->bytes;
    db->st.wal_bytes_since_snap += it->bytes;
    q_push(db, it);
    pthread_mutex_unlock(&db->mu);
    wake_uploaders(db->r);
    return caught_up;
}

/* Copies the next batch (up to the first cut, else everything committed) into a segment.
 * stage_mu held. all: ignore the schedule (gate, flush). Returns 0 when nothing to do. */
static int stage_batch(struct repl_db *db, bool sync_gate, struct err *err)
{
    char path[REPL_PATH_MAX], tmp[REPL_PATH_MAX], name[80], leaf[32];
    struct copy_ctx c;
    int rc;

    pthread_mutex_lock(&db->mu);
    if (!db->gen_open || db->committed <= db->staged || db->wal_fd < 0) {
        pthread_mutex_unlock(&db->mu);
        return 0;
    }
    uint32_t from = db->staged + 1;
    uint32_t to = db->committed;
    bool used_cut = false;
    while (db->n_cuts > 0 && db->cuts[0] < from) { /* stale */
        memmove(db->cuts, db->cuts + 1, (db->n_cuts - 1) * sizeof(*db->cuts));
        db->n_cuts--;
    }
    if (db->n_cuts > 0 && db->cuts[0] < to) {
        to = db->cuts[0];
        used_cut = true;
    }
    copy_ctx_locked(db, &c);
    struct gen_id g = c.gen;
    uint32_t ps = c.gh.page_size;
    int64_t commit_ms = db->pending_since_ms;
    pthread_mutex_unlock(&db->mu);

    uint64_t ts = (uint64_t)time(NULL);
    uint64_t len = (uint64_t)(to - from + 1) * wal_frame_size(ps);
    seg_name(from, to, ts, name, sizeof(name));
    snprintf(leaf, sizeof(leaf), "%" PRIu32 ".pre.tmp", from);
    if (gen_path(db, &g, name, path, sizeof(path)) != 0 ||
        gen_path(db, &g, leaf, tmp, sizeof(tmp)) != 0)
        return ERR(err, ENAMETOOLONG, "replicator: staging path too long");
    uint8_t *buf = copy_buf_get(db, ps);
    if (!buf)
        return ERR(err, ENOMEM, "replicator: out of memory");
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT && gen_dir_remake(db, &g))
        fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return ERR(err, errno, "replicator: create %s: %s", tmp, errno_name(errno));
    uint32_t ck[2];
    rc = copy_frames(db, &c, from, to, fd, buf, ck, err);
    /* Crash safety: the segment's bytes (and, for the first batch of a generation, its
     * .meta/.dep) are on disk before its name appears; the directory entry is made durable
     * by the caller (stager: here; hot-path gate: once per stage_all, before it returns and
     * so before SQLite may overwrite the frames in the -wal). */
    if (rc == 0 && fdatasync(fd) != 0)
        rc = ERR(err, errno, "replicator: fsync %s: %s", tmp, errno_name(errno));
    close(fd);
    if (rc == 0 && from == 1)
        sync_gen_smalls(db, &g);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = ERR(err, errno, "replicator: rename %s: %s", path, errno_name(errno));
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    if (!sync_gate && fileio_fsync_parent(path, err) != 0)
        return err && err->code ? err->code : EIO;
    struct item *it = item_new(ITEM_SEG, &g);
    if (!it)
        return ERR(err, ENOMEM, "replicator: out of memory");
    it->first = from;
    it->last = to;
    it->ts = ts;
    it->bytes = len;
    it->commit_ms = commit_ms;
    bool caught_up = seg_queue(db, it, ck, used_cut);
    if (caught_up && !sync_gate) /* the stager's cut: the next copy may be far off */
        copy_buf_release(db);
    return 1;
}

/* Stages everything committed now (stage_mu taken here). For the hot-path gate. Returns 0
 * or the positive errno of the batch that failed (recorded and logged here). */
static int stage_all(struct repl_db *db, bool sync_gate)
{
    struct err e = {0};
    pthread_mutex_lock(&db->stage_mu);
    int rc;
    bool any = false;
    do {
        rc = stage_batch(db, sync_gate, &e);
        any |= rc == 1;
    } while (rc == 1);
    if (any) {
        /* one directory fsync for every segment staged here (see stage_batch) */
        char gdir[REPL_PATH_MAX];
        pthread_mutex_lock(&db->mu);
        struct gen_id g = db->gen;
        pthread_mutex_unlock(&db->mu);
        if (gen_path(db, &g, NULL, gdir, sizeof(gdir)) == 0)
            fileio_fsync_dir(gdir, NULL);
    }
    pthread_mutex_unlock(&db->stage_mu);
    if (rc != 0) {
        pthread_mutex_lock(&db->mu);
        db_set_error(db, &e);
        pthread_mutex_unlock(&db->mu);
        LOG_ERR("replicator: staging failed db=%s err=%s", db->name, e.msg);
    }
    return rc;
}

/* ---- decoder callbacks ------------------------------------------------------------------- */

static int dec_read(void *arg, uint64_t off, void *buf, size_t len, size_t *got_out,
                    struct err *err)
{
    struct repl_db *db = arg;
    int rc = fileio_pread_full(db->wal_fd, buf, len, off, got_out);
    if (rc)
        return ERR(err, rc, "replicator: read %s: %s", db->wal_path, errno_name(rc));
    return 0;
}

static bool hdr_matches(const struct hdrinfo *a, const struct hdrinfo *b)
{
    return a->page_size == b->page_size && a->salt1 == b->salt1 && a->salt2 == b->salt2 &&
           a->seed1 == b->seed1 && a->seed2 == b->seed2;
}

/* The -wal of the open generation is gone (restart, truncation, unlink): the generation ends.
 * mu held. Frames committed but not staged by now (the hot-path gate failed, e.g. ENOSPC on
 * the staging disk) are lost to the bucket: the generation's chain ends early, so the next
 * generation must start from a snapshot (taken at its first commit: the db file then holds
 * everything, SQLite restarts a WAL only after a complete checkpoint). Until that snapshot is
 * uploaded the database reports a lag (chain_broken), and the flag is persisted (as a pending
 * snapshot) so a restart keeps the promise. */
static void gen_close_locked(struct repl_db *db)
{
    if (!db->gen_open)
        return;
    db->gen_open = false;
    db->n_cuts = 0;
    db->state_dirty = true;
    if (db->committed > db->staged) {
        uint32_t n = db->committed - db->staged;
        char cause[200];
        snprintf(cause, sizeof(cause), "%.150s",
                 db->last_error[0] ? db->last_error : "staging failed");
        snprintf(db->last_error, sizeof(db->last_error),
                 "frames %" PRIu32 "-%" PRIu32 " of generation %s were committed but could not "
                 "be staged before SQLite reused the WAL (%s); the next generation starts with "
                 "a snapshot",
                 db->staged + 1, db->committed, db->gen_str, cause);
        LOG_ERR("replicator: lost unstaged frames db=%s gen=%s frames=%" PRIu32 "-%" PRIu32
                ": the next generation takes a snapshot",
                db->name, db->gen_str, db->staged + 1, db->committed);
        db->lsn_committed -=
            n < db->lsn_committed - db->lsn_staged ? n : db->lsn_committed - db->lsn_staged;
        db->committed = db->staged;
        db->pending_since_ms = 0;
        db->force_snapshot = true;
        db->chain_broken = true;
    }
}

/* SQLite restarted the WAL (new salts, frames from 1 again): can the open generation go on
 * with the new WAL's frames, numbered after its last one and rechained onto its checksum chain
 * (stage_batch)? A bottomless restore verifies only the chain from .meta and replays such a
 * generation like any other. Under heavy writes a WAL restarts at every checkpoint (~20 a
 * second for single-row inserts): a generation each cost a .meta, a .dep, a directory and
 * their fsyncs on the app's write path, and three PUTs. It goes on unless the snapshot policy
 * wants a snapshot now (snapshots are taken at a generation's start), the old WAL's frames are
 * not all staged (the chain is only known up to there), or the format changed. mu held. */
static bool cycle_continue_locked(struct repl_db *db, const struct hdrinfo *h)
{
    if (!db->r->conf.continue_generations || db->committed != db->staged ||
        !db->staged_ck_ok || db->chain_broken || db->need_base ||
        h->page_size != db->gh.page_size || h->big_endian != db->gh.big_endian ||
        db->committed > UINT32_MAX / 2 || snap_wanted_locked(db))
        return false;
    db->cyc_base = db->committed;
    db->ch = *h;
    db->rechain = true;
    db->n_cuts = 0;
    return true;
}

#define REPL_UNSYNCED_MSG                                                                      \
    "the app checkpointed without syncing its WAL (PRAGMA synchronous=OFF) under -o "          \
    "writeback: the kernel may have overwritten commits before they reached the daemon, so "   \
    "the bucket is not known to match until the app closes the database (a snapshot is taken "  \
    "then); fix: synchronous=NORMAL or FULL on every connection, or mount without writeback"

/* In wal_cached mode, a WAL that ended unsynced (unsynced_cycle_locked, at a restart or a
 * truncation) or whose checkpoint sequence skipped. SQLite syncs the WAL before a checkpoint
 * copies it unless the checkpointing connection has synchronous=OFF (the sync of a new WAL's
 * header, at its start, does not count: the commits come after it); without that, nothing
 * made the kernel hand us the old WAL's pages before SQLite wrote the new one over them, nor
 * the checkpointed db pages before the next snapshot would read the file: commits may be
 * missing from the bucket and no snapshot taken while the app writes is known to be whole.
 * The database reports a lag and a pending snapshot until one is taken with no WAL open (the
 * app closed it: closing flushes what the kernel held), or at unmount. mu held. */
static void unsynced_restart_locked(struct repl_db *db)
{
    db->unsynced = true;
    if (!db->wchanged) { /* (a WAL: journal_wal is set) */
        db->watch = db->wchanged = true;
        db->wsince_ms = now_ms();
        db->state_dirty = true;
    }
    if (!db->unsynced_warned) {
        db->unsynced_warned = true;
        LOG_ERR("replicator: db=%s: %s", db->name, REPL_UNSYNCED_MSG);
    }
}

/* wal_cached: the WAL now ending (restarted or truncated, so a checkpoint copied its commits)
 * has commits we saw after the app's last fsync of it, or none we saw at all. With the WAL
 * synced before that checkpoint, as SQLite does unless synchronous=OFF, neither happens: the
 * sync hands us every commit first. mu held. */
static bool unsynced_cycle_locked(const struct repl_db *db)
{
    return db->committed == db->cyc_base || db->synced_upto < db->committed;
}

static int dec_on_restart(void *arg, const struct wal_header *h, struct err *err)
{
    struct repl_db *db = arg;
    struct hdrinfo hi = {h->page_size, h->salt1, h->salt2, h->cksum1, h->cksum2, h->big_endian};
    (void)err;
    pthread_mutex_lock(&db->mu);
    db->journal_wal = true;
    db->journal_known = true;
    bool restarted = db->gen_open && !hdr_matches(&hi, &db->ch);
    bool missed = db->ckpt_known ? h->ckpt_seq != db->ckpt_seq + 1
                                 : db->wal_fresh && h->ckpt_seq != 0;
    if (db->r->conf.wal_cached && (missed || (restarted && unsynced_cycle_locked(db))))
        unsynced_restart_locked(db);
    db->ckpt_known = true;
    db->ckpt_seq = h->ckpt_seq;
    db->cyc_rechained = false;
    if (restarted && !cycle_continue_locked(db, &hi)) {
        /* The old WAL is gone: its generation is complete (the gate staged it). */
        gen_close_locked(db);
    }
    pthread_mutex_unlock(&db->mu);
    return 0;
}

static int dec_on_truncate(void *arg, uint64_t size, struct err *err)
{
    struct repl_db *db = arg;
    (void)size;
    (void)err;
    pthread_mutex_lock(&db->mu);
    /* wal_checkpoint(TRUNCATE) by a synchronous=OFF connection: the kernel drops the -wal's
     * dirty pages with the truncation, so commits after the last fsync may never reach us */
    if (db->r->conf.wal_cached && db->gen_open && unsynced_cycle_locked(db))
        unsynced_restart_locked(db);
    gen_close_locked(db);
    pthread_mutex_unlock(&db->mu);
    return 0;
}

static int push_cut(struct repl_db *db, uint32_t frame)
{
    if (db->n_cuts == db->cap_cuts) {
        size_t cap = db->cap_cuts ? db->cap_cuts * 2 : 8;
        uint32_t *p = realloc(db->cuts, cap * sizeof(*p));
        if (!p)
            return ENOMEM;
        db->cuts = p;
        db->cap_cuts = cap;
    }
    db->cuts[db->n_cuts++] = frame;
    return 0;
}

static int dec_on_commit(void *arg, const struct wal_commit *c, struct err *err)
{
    struct repl_db *db = arg;
    struct hdrinfo hi = {c->page_size, c->salt1, c->salt2, c->seed1, c->seed2, c->big_endian};

    pthread_mutex_lock(&db->mu);
    bool open = db->gen_open;
    pthread_mutex_unlock(&db->mu);
    if (!open) {
        int rc = gen_begin(db, &hi, err);
        if (rc) {
            pthread_mutex_lock(&db->mu);
            db_set_error(db, err);
            pthread_mutex_unlock(&db->mu);
            LOG_ERR("replicator: cannot start generation db=%s err=%s", db->name, err->msg);
            return rc;
        }
    }
    int64_t t = now_ms();
    bool signal = false;
    pthread_mutex_lock(&db->mu);
    db->last_commit_ms = t;
    /* the generation's frame numbers (cyc_base: earlier WALs of the generation) */
    uint32_t first = c->first + db->cyc_base, last = c->last + db->cyc_base;
    if (c->rechained)
        db->cyc_rechained = true;
    if (c->rechained && !db->rechain) {
        db->rechain = true;
        LOG_WARN("replicator: SQLite left a commit with a broken checksum chain (savepoint "
                 "rollback bug) db=%s frames=%" PRIu32 "-%" PRIu32 ": shipping rechained frames",
                 db->name, first, last);
    }
    /* (the stored checksums are the shipped chain only in a generation's first WAL; in a
     * later one staged_ck_ok is always true, see cycle_continue_locked) */
    if (last <= db->staged) { /* resumed: already staged in a previous run */
        if (last > db->committed)
            db->committed = last;
        if (last == db->staged && !db->staged_ck_ok && db->cyc_base == 0) {
            db->staged_ck[0] = c->cksum1;
            db->staged_ck[1] = c->cksum2;
            db->staged_ck_ok = true;
        }
        pthread_mutex_unlock(&db->mu);
        return 0;
    }
    if (!db->staged_ck_ok && db->cyc_base == 0 && first == db->staged + 1) {
        db->staged_ck[0] = c->prev1;
        db->staged_ck[1] = c->prev2;
        db->staged_ck_ok = true;
    }
    uint32_t max = db->r->conf.batch_max_frames ? db->r->conf.batch_max_frames : 1;
    uint32_t base = db->n_cuts ? db->cuts[db->n_cuts - 1] : db->staged;
    if (last - base >= max) {
        if (db->committed > base && last - base > max)
            push_cut(db, db->committed);
        base = db->n_cuts ? db->cuts[db->n_cuts - 1] : db->staged;
        if (last - base >= max)
            push_cut(db, last);
        signal = true;
    }
    db->lsn_committed += last - (first > db->committed ? first : db->committed + 1) + 1;
    db->committed = last;
    if (db->pending_since_ms == 0) {
        db->pending_since_ms = t;
        signal = true;
    }
    pthread_mutex_unlock(&db->mu);
    if (signal) {
        pthread_mutex_lock(&db->r->mu);
        pthread_cond_signal(&db->r->stage_cv);
        pthread_mutex_unlock(&db->r->mu);
    }
    return 0;
}

static const struct wal_decoder_ops dec_ops = {
    .read = dec_read,
    .on_commit = dec_on_commit,
    .on_restart = dec_on_restart,
    .on_truncate = dec_on_truncate,
};

/* ---- lifecycle --------------------------------------------------------------------------- */

void repl_conf_init(struct repl_conf *c)
{
    memset(c, 0, sizeof(*c));
    c->batch_interval_ms = REPL_DEFAULT_BATCH_INTERVAL_MS;
    c->batch_max_frames = REPL_DEFAULT_BATCH_MAX_FRAMES;
    c->compression = COMP_ZSTD;
    c->durable_timeout_ms = REPL_DEFAULT_DURABLE_TIMEOUT_MS;
    c->snapshot_max_gens = REPL_DEFAULT_SNAPSHOT_MAX_GENS;
    c->snapshot_wal_pct = REPL_DEFAULT_SNAPSHOT_WAL_PCT;
    c->snapshot_wal_min_mib = REPL_DEFAULT_SNAPSHOT_WAL_MIN_MIB;
    c->continue_generations = true;
    c->n_uploaders = REPL_DEFAULT_UPLOADERS;
    c->lease_ttl_ms = REPL_DEFAULT_LEASE_TTL_MS;
}

static int owner_init(struct replicator *r, struct err *err);
static void lease_release(struct repl_db *db);
static void item_done_cleanup(struct repl_db *db, const struct item *it);

struct replicator *repl_new(const struct repl_conf *conf, struct s3_client *s3, struct err *err)
{
    if (!conf->staging_dir || !s3) {
        ERR(err, EINVAL, "replicator: staging_dir and an S3 client are required");
        return NULL;
    }
    if (conf->compression == COMP_AUTO) {
        ERR(err, EINVAL, "replicator: compression must be zstd, gz or raw");
        return NULL;
    }
    struct replicator *r = calloc(1, sizeof(*r));
    if (!r) {
        ERR(err, ENOMEM, "replicator: out of memory");
        return NULL;
    }
    r->conf = *conf;
    r->staging_dir = strdup(conf->staging_dir);
    r->conf.staging_dir = r->staging_dir;
    if (r->conf.batch_interval_ms == 0)
        r->conf.batch_interval_ms = 1;
    if (r->conf.n_uploaders == 0)
        r->conf.n_uploaders = 1;
    if (r->conf.snapshot_max_gens == 0)
        r->conf.snapshot_max_gens = REPL_DEFAULT_SNAPSHOT_MAX_GENS;
    if (r->conf.lease_ttl_ms < 3000)
        r->conf.lease_ttl_ms = r->conf.lease_ttl_ms ? 3000 : REPL_DEFAULT_LEASE_TTL_MS;
    r->s3 = s3;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->work_cv, NULL);
    pthread_cond_init(&r->stage_cv, NULL);
    pthread_cond_init(&r->snap_cv, NULL);
    if (!r->staging_dir || fileio_mkdir_p(r->staging_dir, REPL_STATE_DIR_MODE, err) != 0) {
        if (!r->staging_dir)
            ERR(err, ENOMEM, "replicator: out of memory");
        repl_free(r);
        return NULL;
    }
    chmod(r->staging_dir, REPL_STATE_DIR_MODE);
    if (owner_init(r, err) != 0) {
        repl_free(r);
        return NULL;
    }
    return r;
}

static void *stager_main(void *arg);
static void watch_check(struct repl_db *db, bool hurry);
static void *uploader_main(void *arg);
static void *snapper_main(void *arg);

int repl_start(struct replicator *r, struct err *err)
{
    if (r->started)
        return 0;
    r->uploaders = calloc(r->conf.n_uploaders, sizeof(pthread_t));
    if (!r->uploaders)
        return ERR(err, ENOMEM, "replicator: out of memory");
    int rc = pthread_create(&r->stager, NULL, stager_main, r);
    if (rc)
        return ERR(err, rc, "replicator: start stager thread: %s", errno_name(rc));
    rc = pthread_create(&r->snapper, NULL, snapper_main, r);
    if (rc) {
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_broadcast(&r->stage_cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->stager, NULL);
        return ERR(err, rc, "replicator: start snapshot thread: %s", errno_name(rc));
    }
    r->started = true;
    for (unsigned i = 0; i < r->conf.n_uploaders; i++) {
        rc = pthread_create(&r->uploaders[i], NULL, uploader_main, r);
        if (rc) {
            ERR(err, rc, "replicator: start upload thread: %s", errno_name(rc));
            break;
        }
        r->n_uploaders++;
    }
    return r->n_uploaders > 0 ? 0 : rc;
}

static void db_free(struct repl_db *db)
{
    pthread_mutex_lock(&db->snap_mu);
    snapshot_free(db->snap);
    db->snap = NULL;
    pthread_mutex_unlock(&db->snap_mu);
    wal_decoder_free(db->dec);
    if (db->wal_fd >= 0)
        close(db->wal_fd);
    item_free_list(db->q_head);
    free(db->cuts);
    free(db->copy_buf);
    free(db->name);
    free(db->db_path);
    free(db->wal_path);
    free(db->dir);
    pthread_mutex_destroy(&db->stage_mu);
    pthread_mutex_destroy(&db->gen_mu);
    pthread_mutex_destroy(&db->snap_mu);
    pthread_mutex_destroy(&db->mu);
    pthread_mutex_destroy(&db->persist_mu);
    pthread_cond_destroy(&db->cv);
    free(db);
}

void repl_free(struct replicator *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->work_cv);
    pthread_cond_broadcast(&r->stage_cv);
    pthread_cond_broadcast(&r->snap_cv);
    pthread_mutex_unlock(&r->mu);
    if (r->started) {
        pthread_join(r->stager, NULL);
        pthread_join(r->snapper, NULL);
        for (unsigned i = 0; i < r->n_uploaders; i++)
            pthread_join(r->uploaders[i], NULL);
    }
    free(r->uploaders);
    struct repl_db *db = r->dbs;
    while (db) {
        struct repl_db *n = db->next;
        if (db->lease_held)
            lease_release(db);
        db_persist(db);
        db_free(db);
        db = n;
    }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->work_cv);
    pthread_cond_destroy(&r->stage_cv);
    pthread_cond_destroy(&r->snap_cv);
    free(r->staging_dir);
    free(r);
}

/* ---- open: state, queue rebuild, WAL scan ------------------------------------------------- */

static int db_dir_for(struct replicator *r, const char *name, char **out)
{
    uint8_t h[SHA256_DIGEST_LENGTH];
    char hex[33];
    SHA256((const uint8_t *)name, strlen(name), h);
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    size_t n = strlen(r->staging_dir) + 40;
    *out = malloc(n);
    if (!*out)
        return ENOMEM;
    snprintf(*out, n, "%s/db-%s", r->staging_dir, hex);
    return 0;
}

static int cmp_gen_oldest_first(const void *a, const void *b)
{
    /* gen_id_cmp < 0 when a is newer: oldest first means reverse. */
    return -gen_id_cmp((const struct gen_id *)a, (const struct gen_id *)b);
}

static int cmp_item_first(const void *a, const void *b)
{
    const struct item *x = *(struct item *const *)a, *y = *(struct item *const *)b;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* A new ITEM_SEG of generation gen with first, last and ts from the name
 * "<first>-<last>-<ts><ext>" (a staged segment or a merge marker); NULL if nm is not one (a
 * foreign or damaged file is left alone) or out of memory. */
static struct item *seg_item_new(const struct gen_id *gen, uint32_t first, uint32_t last,
                                 uint64_t ts)
{
    struct item *it = item_new(ITEM_SEG, gen);
    if (it) {
        it->first = first;
        it->last = last;
        it->ts = ts;
    }
    return it;
}

static struct item *range_item_new(const char *nm, const char *ext, const struct gen_id *gen)
{
    unsigned f = 0, la = 0;
    unsigned long long t = 0;
    int end = 0;
    if (sscanf(nm, "%u-%u-%llu%n", &f, &la, &t, &end) != 3 || strcmp(nm + end, ext) != 0 ||
        f == 0 || la < f)
        return NULL;
    return seg_item_new(gen, f, la, t);
}

/* range_item_new for a stolen WAL's name (seg_item_name); NULL if nm is not one. */
static struct item *wseg_item_new(const char *nm, const struct gen_id *gen)
{
    unsigned f = 0, la = 0, skip = 0, ps = 0, c0, c1, s0, s1;
    unsigned long long t = 0;
    char order = 0;
    int end = 0;
    if (sscanf(nm, "%u-%u-%llu.%u.%u.%8x%8x.%8x%8x.%c%n", &f, &la, &t, &skip, &ps, &c0, &c1, &s0,
               &s1, &order, &end) != 10 ||
        strcmp(nm + end, ".wseg") != 0 || f == 0 || la < f || !wal_page_size_valid(ps) ||
        (order != 'l' && order != 'b'))
        return NULL;
    struct item *it = seg_item_new(gen, f, la, t);
    if (it) {
        it->wal_src = true;
        it->wal_skip = skip;
        it->page_size = ps;
        it->ck_in[0] = c0;
        it->ck_in[1] = c1;
        it->salt[0] = s0;
        it->salt[1] = s1;
        it->big_endian = order == 'b';
    }
    return it;
}

/* Applies the merge markers of one generation directory to its staged segments (sorted by
 * first frame; see "merged uploads"): a marker whose segments are all there makes its first
 * segment the head of the same merged upload again; one whose segments are not all there was
 * uploaded (they are deleted only after the PUT), so what is left of them goes, and the
 * marker. Removed segments are freed and dropped from segs. */
static void rebuild_merges(const char *gdir, struct item **segs, size_t *n_segs,
                           const struct item *marks)
{
    for (const struct item *m = marks; m; m = m->next) {
        size_t k0 = 0, k = 0;
        while (k0 < *n_segs && segs[k0]->first < m->first)
            k0++;
        uint32_t reach = m->first - 1;
        for (k = k0; k < *n_segs && segs[k]->first == reach + 1 &&
                     segs[k]->last <= m->merge_last;
             k++)
            reach = segs[k]->last;
        if (k > k0 && reach == m->merge_last && segs[k0]->first == m->first) {
            segs[k0]->merge_last = m->merge_last;
            segs[k0]->merge_ts = m->merge_ts;
            continue;
        }
        size_t w = 0;
        for (size_t r = 0; r < *n_segs; r++) {
            struct item *x = segs[r];
            if (x->first >= m->first && x->last <= m->merge_last) {
                seg_files_unlink(gdir, x);
                free(x);
                continue;
            }
            segs[w++] = x;
        }
        *n_segs = w;
        char p[REPL_PATH_MAX], nm[80];
        merge_name(m->first, m->merge_last, m->merge_ts, nm, sizeof(nm));
        if (path_join(p, sizeof(p), gdir, nm) == 0)
            unlink(p);
    }
}

/* Rebuilds the upload queue from the staging directory (mu not needed: db not shared yet).
 * *max_seg_out: highest staged frame of generation cur (0 if none). */
static int db_rebuild_queue(struct repl_db *db, const struct gen_id *cur, bool has_cur,
                            uint32_t *max_seg_out, bool *snap_file_out, struct err *err)
{
    DIR *d = opendir(db->dir);
    struct gen_id *gens = NULL;
    size_t n_gens = 0, cap = 0;
    int rc = 0;

    *max_seg_out = 0;
    *snap_file_out = false;
    if (!d)
        return ERR(err, errno, "replicator: open %s: %s", db->dir, errno_name(errno));
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct gen_id g;
        if (strcmp(de->d_name, "tombstone") == 0) {
            struct item *it = item_new(ITEM_TOMBSTONE, NULL);
            if (it)
                q_push(db, it);
            continue;
        }
        if (strlen(de->d_name) != GEN_ID_STR_LEN ||
            gen_id_parse(de->d_name, GEN_ID_STR_LEN, &g, NULL) != 0)
            continue;
        if (n_gens == cap) {
            cap = cap ? cap * 2 : 8;
            struct gen_id *p = realloc(gens, cap * sizeof(*p));
            if (!p) {
                rc = ERR(err, ENOMEM, "replicator: out of memory");
                goto out;
            }
            gens = p;
        }
        gens[n_gens++] = g;
    }
    if (n_gens > 1)
        qsort(gens, n_gens, sizeof(*gens), cmp_gen_oldest_first);
    for (size_t i = 0; i < n_gens; i++) {
        char gdir[REPL_PATH_MAX];
        gen_path(db, &gens[i], NULL, gdir, sizeof(gdir));
        DIR *gd = opendir(gdir);
        if (!gd)
            continue;
        bool has_dep = false, has_meta = false, any = false;
        struct item **segs = NULL;
        size_t n_segs = 0, cap_segs = 0;
        struct item *marks = NULL; /* merge markers: first, last (merge_last), ts */
        while ((de = readdir(gd)) != NULL) {
            const char *nm = de->d_name;
            if (strcmp(nm, ".dep") == 0) {
                has_dep = any = true;
            } else if (strcmp(nm, ".meta") == 0) {
                has_meta = any = true;
            } else if (name_has_suffix(nm, ".tmp")) {
                char p[REPL_PATH_MAX];
                if (path_join(p, sizeof(p), gdir, nm) == 0)
                    unlink(p);
            } else if (strcmp(nm, "snap.cow") == 0) {
                char p[REPL_PATH_MAX];
                if (path_join(p, sizeof(p), gdir, nm) == 0)
                    unlink(p);
            } else if (strncmp(nm, "db.", 3) == 0) {
                enum compression c;
                if (layout_snapshot_parse(nm, &c) == 0) {
                    /* finished (renamed after fsync): the exact image of the generation's
                     * start; uploaded by the snapshot thread (snap_find_file) */
                    if (has_cur && gen_id_eq(&gens[i], cur))
                        *snap_file_out = true;
                    db->snap_upload = true;
                    any = true;
                }
            } else if (name_has_suffix(nm, ".merge")) {
                struct item *m = range_item_new(nm, ".merge", &gens[i]);
                if (!m)
                    continue;
                m->merge_last = m->last;
                m->merge_ts = m->ts;
                m->next = marks;
                marks = m;
            } else if (name_has_suffix(nm, ".seg") || name_has_suffix(nm, ".wseg")) {
                bool wseg = name_has_suffix(nm, ".wseg");
                struct item *it =
                    wseg ? wseg_item_new(nm, &gens[i]) : range_item_new(nm, ".seg", &gens[i]);
                if (!it)
                    continue;
                char p[REPL_PATH_MAX];
                struct stat sb;
                if (wseg)
                    it->bytes =
                        (uint64_t)(it->last - it->first + 1) * wal_frame_size(it->page_size);
                else if (path_join(p, sizeof(p), gdir, nm) == 0 && stat(p, &sb) == 0)
                    it->bytes = (uint64_t)sb.st_size;
                if (n_segs == cap_segs) {
                    cap_segs = cap_segs ? cap_segs * 2 : 16;
                    struct item **np = realloc(segs, cap_segs * sizeof(*np));
                    if (!np) {
                        free(it);
                        continue;
                    }
                    segs = np;
                }
                segs[n_segs++] = it;
                any = true;
            }
        }
        closedir(gd);
        if (has_dep) {
            struct item *it = item_new(ITEM_DEP, &gens[i]);
            if (it)
                q_push(db, it);
        }
        if (has_meta) {
            struct item *it = item_new(ITEM_META, &gens[i]);
            if (it)
                q_push(db, it);
        }
        if (n_segs > 1)
            qsort(segs, n_segs, sizeof(*segs), cmp_item_first);
        rebuild_merges(gdir, segs, &n_segs, marks);
        item_free_list(marks);
        for (size_t k = 0; k < n_segs; k++) {
            if (has_cur && gen_id_eq(&gens[i], cur) && segs[k]->last <= db->st.uploaded) {
                seg_files_unlink(gdir, segs[k]); /* uploaded before the crash */
                free(segs[k]);
                continue;
            }
            db->staged_bytes += segs[k]->bytes;
            if (has_cur && gen_id_eq(&gens[i], cur) && segs[k]->last > *max_seg_out)
                *max_seg_out = segs[k]->last;
            q_push(db, segs[k]);
        }
        free(segs);
        if (!any && !(has_cur && gen_id_eq(&gens[i], cur)))
            rmdir(gdir);
    }
out:
    closedir(d);
    free(gens);
    return rc;
}

/* The first 100 bytes of db's file and its size: false unless it is a SQLite database. */
static bool db_header_read(const struct repl_db *db, uint8_t h[100], uint64_t *size)
{
    size_t got = 0;
    struct stat sb;
    int fd = open(db->db_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = fstat(fd, &sb) == 0 && fileio_pread_full(fd, h, 100, 0, &got) == 0 &&
              got == 100 && memcmp(h, "SQLite format 3", 16) == 0;
    close(fd);
    *size = ok ? (uint64_t)sb.st_size : 0;
    return ok;
}

static void db_detect_journal(struct repl_db *db)
{
    uint8_t h[100];
    uint64_t size;
    if (!db_header_read(db, h, &size))
        return;
    pthread_mutex_lock(&db->mu);
    db->journal_known = true;
    if (h[18] == 2 && h[19] == 2)
        db->journal_wal = true;
    else if (!db->has_gen && db->wal_fd < 0)
        db->journal_wal = false;
    bool warn = !db->journal_wal && !db->journal_warned;
    if (warn)
        db->journal_warned = true;
    pthread_mutex_unlock(&db->mu);
    if (warn)
        LOG_WARN("replicator: database is in rollback-journal mode and NOT replicated "
                 "db=%s (use PRAGMA journal_mode=WAL)",
                 db->name);
}

static int wal_open_fd(const char *path)
{
    return open(path, O_RDONLY | O_CLOEXEC);
}

static struct repl_db *db_alloc(struct replicator *r, const char *db_name, const char *db_path,
                                const char *wal_path, struct err *err)
{
    struct repl_db *db = calloc(1, sizeof(*db));
    if (!db) {
        ERR(err, ENOMEM, "replicator: out of memory");
        return NULL;
    }
    db->r = r;
    db->refs = 1;
    db->wal_fd = -1;
    pthread_mutex_init(&db->stage_mu, NULL);
    pthread_mutex_init(&db->gen_mu, NULL);
    pthread_mutex_init(&db->snap_mu, NULL);
    pthread_mutex_init(&db->mu, NULL);
    pthread_mutex_init(&db->persist_mu, NULL);
    pthread_cond_init(&db->cv, NULL);
    db->name = strdup(db_name);
    db->db_path = strdup(db_path);
    db->wal_path = strdup(wal_path);
    if (!db->name || !db->db_path || !db->wal_path || db_dir_for(r, db_name, &db->dir) != 0) {
        ERR(err, ENOMEM, "replicator: out of memory");
        db_free(db);
        return NULL;
    }
    /* The file as it is when it becomes known: after a lazy restore, what the bucket holds. */
    file_sig_of(db_path, &db->wsig);
    return db;
}

/* Loads state, rebuilds the queue, scans the -wal. db is private to the caller. */
static int db_load(struct repl_db *db, bool fresh, struct err *err)
{
    struct replstate st;
    bool torn = false, have_state = false;
    int rc;
    char path[REPL_PATH_MAX];

    if ((rc = fileio_mkdir_p(db->dir, REPL_STATE_DIR_MODE, err)) != 0)
        return rc;
    if (path_join(path, sizeof(path), db->dir, "name") == 0 && access(path, F_OK) != 0)
        write_small(path, db->name, strlen(db->name), NULL);
    memset(&st, 0, sizeof(st));
    if (!fresh) {
        struct err le = {0};
        have_state = replstate_load(db->dir, &st, &torn, &le) == 0;
        if (torn)
            LOG_WARN("replicator: damaged state slot detected and skipped db=%s dir=%s "
                     "(using %s)",
                     db->name, db->dir, have_state ? "the other slot" : "no state");
    }
    db->st = st;
    uint32_t max_seg = 0;
    bool snap_file = false;
    if ((rc = db_rebuild_queue(db, &st.gen, have_state && st.has_gen, &max_seg, &snap_file, err)) !=
        0)
        return rc;

    /* The -wal as it is now. */
    struct hdrinfo wh = {0};
    bool wal_hdr = false;
    uint64_t wal_size = 0;
    db->wal_fd = wal_open_fd(db->wal_path);
    if (db->wal_fd >= 0) {
        uint8_t h[WAL_HEADER_BYTES];
        size_t got = 0;
        struct wal_header hd;
        struct stat sb;
        if (fstat(db->wal_fd, &sb) == 0)
            wal_size = (uint64_t)sb.st_size;
        if (fileio_pread_full(db->wal_fd, h, sizeof(h), 0, &got) == 0 && got == sizeof(h) &&
            wal_header_parse(h, &hd, NULL) == 0) {
            wal_hdr = true;
            wh = (struct hdrinfo){hd.page_size, hd.salt1,  hd.salt2,
                                  hd.cksum1,    hd.cksum2, hd.big_endian};
        }
    }
    struct hdrinfo sh = {st.page_size, st.salt1, st.salt2, st.seed1, st.seed2, wh.big_endian};
    bool snap_lost = st.snap_pending && !snap_file;
    bool resume =
        have_state && st.has_gen && st.gen_open && wal_hdr && hdr_matches(&wh, &sh) && !snap_lost;
    if (resume) {
        db->has_gen = true;
        db->gen_open = true;
        db->gen = st.gen;
        gen_id_format(&st.gen, db->gen_str);
        db->gh = sh;
        db->ch = sh; /* a generation resumes only in its first WAL (state holds its header) */
        db->cyc_base = 0;
        db->uploaded = st.uploaded;
        db->staged = max_seg > st.uploaded ? max_seg : st.uploaded;
        db->committed = db->staged;
        db->staged_ck[0] = sh.seed1;
        db->staged_ck[1] = sh.seed2;
        db->staged_ck_ok = db->staged == 0; /* else learnt from the scan (dec_on_commit) */
        LOG_INFO("replicator: resuming db=%s gen=%s uploaded=%" PRIu32 " staged=%" PRIu32, db->name,
                 db->gen_str, db->uploaded, db->staged);
    } else if (have_state && st.has_gen) {
        /* Not resumed: the next generation restages the current -wal from frame 1 on top of
         * the db file as it is now. Its link to st.gen is not proven continuous (generations
         * started after the last state save are unknown here, the snapshot of st.gen may be
         * lost), so it takes a snapshot of the db file now as its own base. */
        db->has_parent_hint = true;
        db->parent_hint = st.gen;
        db->force_snapshot = true;
        db->need_base = true;
        if (snap_lost)
            LOG_WARN("replicator: snapshot of the last run was not finished db=%s: a new "
                     "generation with a snapshot starts",
                     db->name);
    }
    if (have_state && st.changed_outside) { /* its snapshot was not taken yet: watch_check */
        db->watch = db->wchanged = true;
        db->wsince_ms = now_ms();
    }
    struct item *v = item_new(ITEM_VERIFY, NULL);
    if (!v)
        return ERR(err, ENOMEM, "replicator: out of memory");
    v->has_expect = have_state && st.has_gen;
    v->expect = st.gen;
    q_push_front(db, v);

    db->dec = wal_decoder_new(&dec_ops, db, err);
    if (!db->dec)
        return err ? err->code : ENOMEM;
    db->wal_fresh = !(db->wal_fd >= 0 && wal_hdr);
    if (db->wal_fd >= 0 && wal_hdr) {
        struct err se = {0};
        rc = wal_decoder_scan(db->dec, wal_size, &se);
        if (rc) {
            db_set_error(db, &se);
            LOG_WARN("replicator: scanning %s failed db=%s err=%s", db->wal_path, db->name, se.msg);
        }
        db->synced_upto = db->committed; /* read from the backing file: nothing in flight */
    }
    db_detect_journal(db);
    return 0;
}

struct repl_db *repl_db_open(struct replicator *r, const char *db_name, const char *db_path,
                             const char *wal_path, struct err *err)
{
    if (!layout_db_name_valid(db_name)) {
        ERR(err, EINVAL, "replicator: invalid db_name '%s'", db_name);
        return NULL;
    }
    pthread_mutex_lock(&r->mu);
    for (struct repl_db *d = r->dbs; d; d = d->next) {
        if (!d->retired && strcmp(d->name, db_name) == 0) {
            d->refs++;
            pthread_mutex_unlock(&r->mu);
            return d;
        }
    }
    pthread_mutex_unlock(&r->mu);
    struct repl_db *db = db_alloc(r, db_name, db_path, wal_path, err);
    if (!db)
        return NULL;
    if (db_load(db, false, err) != 0) {
        db_free(db);
        return NULL;
    }
    pthread_mutex_lock(&r->mu);
    for (struct repl_db *d = r->dbs; d; d = d->next) { /* lost a race with another opener */
        if (!d->retired && strcmp(d->name, db_name) == 0) {
            d->refs++;
            pthread_mutex_unlock(&r->mu);
            db_free(db);
            return d;
        }
    }
    db->next = r->dbs;
    r->dbs = db;
    pthread_cond_broadcast(&r->work_cv);
    pthread_cond_broadcast(&r->stage_cv);
    pthread_cond_broadcast(&r->snap_cv);
    pthread_mutex_unlock(&r->mu);
    return db;
}

void repl_db_close(struct repl_db *db)
{
    if (!db)
        return;
    pthread_mutex_lock(&db->r->mu);
    if (db->refs > 0)
        db->refs--;
    pthread_mutex_unlock(&db->r->mu);
}

/* ---- hot path ---------------------------------------------------------------------------- */

/* ---- stolen WALs ----------------------------------------------------------------------------
 * When SQLite restarts its WAL, the frames the bucket does not have yet must leave the -wal
 * before SQLite overwrites them. Copying them (read, rechain, write, fdatasync: every frame
 * written twice, most of the CPU and disk the replicator used under heavy writes) is replaced
 * by taking the old -wal file itself: conf.replace_wal renames it into the generation
 * directory as a .wseg segment and puts an empty file of the same size in its place, which
 * the app's open handles then use. The old file needs no copy and, since SQLite synced it
 * before its checkpoint, usually no flush either. Its name says which of its frames form the
 * segment and how to rechain them onto the generation (chain before the first frame, salts,
 * byte order): the uploader rechains them as it reads them. The chain after the last frame,
 * which the next segment starts from, follows without reading a frame: the checksum is linear
 * in its start (wal_chain_shift), and the WAL's own chain is stored in its frame headers.
 * Taken only when the unstaged frames fill at least half the file's blocks (a WAL grown large
 * by one transaction keeps them all, copying a few frames is cheaper; the daemon grows a -wal
 * ahead of SQLite sparsely) and nothing stands in the way: a batch cut inside the range, or a
 * commit of SQLite's savepoint bug in this WAL (its stored chain is not a chain). Otherwise the
 * frames are copied. */
#define REPL_STEAL_MIN_PCT 50u

/* Reads the stored checksum of WAL frame n (1-based) of fd into out. */
static int stored_chain_at(int fd, uint32_t ps, uint32_t n, uint32_t out[2])
{
    uint8_t b[8];
    size_t got = 0;
    int rc = fileio_pread_full(fd, b, sizeof(b), wal_frame_offset(ps, n) + 16, &got);
    if (rc == 0 && got < sizeof(b))
        rc = EIO;
    out[0] = be32_load(b);
    out[1] = be32_load(b + 4);
    return rc;
}

/* Stages everything committed by taking the -wal (see above). 0 when done, else a positive
 * errno (EAGAIN: not applicable) with nothing changed: the caller copies instead. */
static int wal_steal(struct repl_db *db)
{
    struct replicator *r = db->r;
    char path[REPL_PATH_MAX], gdir[REPL_PATH_MAX], name[160];
    int rc;

    if (!r->conf.replace_wal)
        return EAGAIN;
    pthread_mutex_lock(&db->stage_mu);
    pthread_mutex_lock(&db->mu);
    uint32_t from = db->staged + 1, to = db->committed, base = db->cyc_base;
    bool cut_inside = false;
    for (size_t i = 0; i < db->n_cuts; i++)
        cut_inside |= db->cuts[i] >= from && db->cuts[i] < to;
    bool go = db->gen_open && to >= from && db->wal_fd >= 0 && !db->cyc_rechained &&
              (db->staged_ck_ok || !db->rechain) && from > base && !cut_inside;
    struct gen_id g = db->gen;
    struct hdrinfo gh = db->gh, ch = db->ch;
    uint32_t s_in[2] = {db->staged_ck[0], db->staged_ck[1]};
    bool ck_ok = db->staged_ck_ok;
    int fd = db->wal_fd;
    int64_t commit_ms = db->pending_since_ms;
    pthread_mutex_unlock(&db->mu);
    rc = go ? 0 : EAGAIN;

    uint32_t ps = ch.page_size, n = to - from + 1;
    uint64_t len = (uint64_t)n * wal_frame_size(ps);
    struct stat sb;
    if (rc == 0 && (ps != gh.page_size || fstat(fd, &sb) != 0 ||
                    len * 100 < (uint64_t)sb.st_blocks * 512 * REPL_STEAL_MIN_PCT))
        rc = EAGAIN;
    uint32_t w_in[2] = {ch.seed1, ch.seed2}, w_out[2], s_out[2];
    if (rc == 0 && from - 1 > base)
        rc = stored_chain_at(fd, ps, from - 1 - base, w_in);
    if (rc == 0)
        rc = stored_chain_at(fd, ps, to - base, w_out);
    struct item *it = rc == 0 ? item_new(ITEM_SEG, &g) : NULL;
    if (rc == 0 && !it)
        rc = ENOMEM;
    if (rc == 0) {
        if (!ck_ok) { /* first WAL of the generation, not rechained: shipped = stored */
            s_in[0] = w_in[0];
            s_in[1] = w_in[1];
        }
        wal_chain_shift(ps, n, w_in, w_out, s_in, s_out);
        it->first = from;
        it->last = to;
        it->ts = (uint64_t)time(NULL);
        it->bytes = len;
        it->commit_ms = commit_ms;
        it->wal_src = true;
        it->wal_skip = from - 1 - base;
        it->page_size = ps;
        it->ck_in[0] = s_in[0];
        it->ck_in[1] = s_in[1];
        it->salt[0] = gh.salt1;
        it->salt[1] = gh.salt2;
        it->big_endian = gh.big_endian;
        seg_item_name(it, name, sizeof(name));
        if (gen_path(db, &g, name, path, sizeof(path)) != 0 ||
            gen_path(db, &g, NULL, gdir, sizeof(gdir)) != 0)
            rc = ENAMETOOLONG;
    }
    if (rc == 0 && from == 1)
        sync_gen_smalls(db, &g);
    /* (a no-op in the usual case: SQLite synced the -wal before its checkpoint) */
    if (rc == 0 && fdatasync(fd) != 0)
        rc = errno;
    if (rc == 0)
        rc = r->conf.replace_wal(r->conf.replace_arg, db->wal_path, path);
    if (rc == ENOENT && gen_dir_remake(db, &g))
        rc = r->conf.replace_wal(r->conf.replace_arg, db->wal_path, path);
    if (rc != 0) {
        LOG_DEBUG("replicator: cannot take the -wal db=%s err=%s (copying its frames)", db->name,
                  errno_name(rc));
        free(it);
        pthread_mutex_unlock(&db->stage_mu);
        return rc;
    }
    int nfd = wal_open_fd(db->wal_path);
    pthread_mutex_lock(&db->mu);
    db->wal_fd = nfd; /* -1: the next write opens it again (wal_refresh_fd) */
    db->n_wals_taken++;
    pthread_mutex_unlock(&db->mu);
    close(fd);
    fileio_fsync_dir(gdir, NULL);
    seg_queue(db, it, s_out, false);
    pthread_mutex_unlock(&db->stage_mu);
    return 0;
}

/* Would a change of the -wal from byte off on destroy committed frames not yet staged? */
static bool gate_needed(struct repl_db *db, uint64_t off)
{
    pthread_mutex_lock(&db->mu);
    bool need = db->gen_open && db->committed > db->staged &&
                off < wal_frame_offset(db->gh.page_size, db->committed - db->cyc_base + 1);
    pthread_mutex_unlock(&db->mu);
    return need;
}

/* The hot-path gate: stages the committed frames a change from byte off on would destroy.
 * Refuses the change (ENOSPC / EDQUOT for the app: like a full disk, SQLite rolls the
 * transaction back and retries the WAL restart later) only when the staging disk is full and
 * those frames are still unstaged; any other staging failure lets the change proceed (the
 * frames are then lost to the bucket and the next generation takes a snapshot, see
 * gen_close_locked): an inconsistency that retrying cannot fix must not stop the app. */
static int gate(struct repl_db *db, uint64_t off)
{
    if (!gate_needed(db, off) || wal_steal(db) == 0)
        return 0;
    int rc = stage_all(db, true);
    if ((rc == ENOSPC || rc == EDQUOT) && gate_needed(db, off)) {
        LOG_WARN_RL(10000, "replicator: staging disk full db=%s: the app's -wal change at %" PRIu64
                 " is refused (%s) until committed frames can be staged",
                 db->name, off, errno_name(rc));
        return rc;
    }
    return 0;
}

int repl_wal_before_write(struct repl_db *db, uint64_t off, size_t len)
{
    (void)len;
    return gate(db, off);
}

static void wal_feed_error(struct repl_db *db, struct err *e)
{
    pthread_mutex_lock(&db->mu);
    db_set_error(db, e);
    pthread_mutex_unlock(&db->mu);
    LOG_ERR("replicator: decoding %s failed db=%s err=%s", db->wal_path, db->name, e->msg);
}

/* The -wal at wal_path may be a new file (deleted and re-created): use it. */
static void wal_refresh_fd(struct repl_db *db)
{
    struct stat a, b;
    bool same = db->wal_fd >= 0 && fstat(db->wal_fd, &a) == 0 && stat(db->wal_path, &b) == 0 &&
                a.st_ino == b.st_ino && a.st_dev == b.st_dev;
    if (same)
        return;
    int fd = wal_open_fd(db->wal_path);
    if (fd < 0)
        return;
    pthread_mutex_lock(&db->stage_mu);
    pthread_mutex_lock(&db->mu);
    int old = db->wal_fd;
    db->wal_fd = fd;
    pthread_mutex_unlock(&db->mu);
    pthread_mutex_unlock(&db->stage_mu);
    if (old >= 0)
        close(old);
}

void repl_wal_after_write(struct repl_db *db, uint64_t off, const void *buf, size_t len)
{
    struct err e = {0};
    int rc;
    if (off == 0 || db->wal_fd < 0)
        wal_refresh_fd(db);
    if (db->wal_fd < 0)
        return;
    pthread_mutex_lock(&db->gen_mu);
    rc = wal_decoder_wrote(db->dec, off, buf, len, &e);
    pthread_mutex_unlock(&db->gen_mu);
    if (rc != 0)
        wal_feed_error(db, &e);
}

int repl_wal_before_truncate(struct repl_db *db, uint64_t size)
{
    return gate(db, size);
}

void repl_wal_after_truncate(struct repl_db *db, uint64_t size)
{
    struct err e = {0};
    if (db->wal_fd < 0)
        wal_refresh_fd(db);
    if (db->wal_fd < 0)
        return;
    pthread_mutex_lock(&db->gen_mu);
    int rc = wal_decoder_truncated(db->dec, size, &e);
    pthread_mutex_unlock(&db->gen_mu);
    if (rc != 0)
        wal_feed_error(db, &e);
}

void repl_wal_unlinked(struct repl_db *db)
{
    stage_all(db, true);
    struct err e = {0};
    pthread_mutex_lock(&db->stage_mu);
    pthread_mutex_lock(&db->mu);
    int fd = db->wal_fd;
    db->wal_fd = -1;
    gen_close_locked(db);
    db->ckpt_known = false;
    db->wal_fresh = true;
    pthread_mutex_unlock(&db->mu);
    copy_buf_release(db);
    pthread_mutex_unlock(&db->stage_mu);
    if (fd >= 0)
        close(fd);
    pthread_mutex_lock(&db->gen_mu);
    wal_decoder_truncated(db->dec, 0, &e); /* forget the header */
    pthread_mutex_unlock(&db->gen_mu);
}

int repl_wal_fsync(struct repl_db *db)
{
    struct replicator *r = db->r;
    if (r->conf.wal_cached) {
        /* the kernel handed over the -wal's dirty pages before this FSYNC */
        pthread_mutex_lock(&db->mu);
        db->synced_upto = db->committed;
        pthread_mutex_unlock(&db->mu);
    }
    if (!r->conf.durable)
        return 0;
    int64_t deadline = now_ms() + r->conf.durable_timeout_ms;
    pthread_mutex_lock(&db->mu);
    uint64_t target = db->lsn_committed;
    db_hurry_locked(db, target);
    pthread_mutex_unlock(&db->mu);
    pthread_mutex_lock(&r->mu);
    pthread_cond_signal(&r->stage_cv);
    pthread_cond_broadcast(&r->work_cv);
    pthread_mutex_unlock(&r->mu);
    int rc = 0;
    pthread_mutex_lock(&db->mu);
    while (db->lsn_uploaded < target) {
        struct timespec ts;
        deadline_ts(deadline, &ts);
        if (pthread_cond_timedwait(&db->cv, &db->mu, &ts) == ETIMEDOUT &&
            db->lsn_uploaded < target) {
            rc = EIO;
            LOG_ERR("replicator: durable fsync timed out db=%s after %" PRIu32 " ms err=%s",
                    db->name, r->conf.durable_timeout_ms,
                    db->last_error[0] ? db->last_error : "none");
            break;
        }
    }
    pthread_mutex_unlock(&db->mu);
    return rc;
}

/* A rollback-journal database writes its file itself, and is not replicated
 * (db_detect_journal says so): its changes are not news. mu held. */
static bool may_be_wal_locked(const struct repl_db *db)
{
    return db->journal_wal || !db->journal_known;
}

/* The db file is being changed outside SQLite's WAL (see raw_change_note). mu held. true
 * when this is news, to be persisted. */
static bool raw_change_locked(struct repl_db *db)
{
    if (!may_be_wal_locked(db) || db->wchanged)
        return false;
    db->watch = true;
    db->wchanged = true;
    db->wsince_ms = now_ms();
    db->state_dirty = true;
    return true;
}

/* A database in WAL mode writes its file only when it checkpoints the WAL's frames, so only
 * while a WAL generation is open; truncating it to nothing is never SQLite's. Anything else is
 * someone writing over it (cp new.db app.db after the app closed): the bucket's history no
 * longer leads to this file, and a WAL continuing that history would restore to something
 * else. The stager snapshots it once it settles (watch_check), and a WAL beginning before
 * then takes a snapshot (gen_begin). */
static void raw_change_note(struct repl_db *db, bool truncated_to_zero)
{
    pthread_mutex_lock(&db->mu);
    bool news = (truncated_to_zero || !db->gen_open) && raw_change_locked(db);
    pthread_mutex_unlock(&db->mu);
    /* saved at once (once per copy, not per write): a daemon killed before the snapshot
     * would otherwise forget it, and nothing would take one until the next commit */
    if (news)
        db_persist(db);
}

void repl_db_before_write(struct repl_db *db, uint64_t off, size_t len)
{
    raw_change_note(db, false);
    pthread_mutex_lock(&db->snap_mu);
    if (db->snap) {
        struct err e = {0};
        if (snapshot_cow(db->snap, off, len, &e) != 0)
            LOG_ERR("snapshot: copy-on-write failed db=%s err=%s", db->name, e.msg);
    }
    pthread_mutex_unlock(&db->snap_mu);
}

void repl_db_before_truncate(struct repl_db *db, uint64_t size)
{
    raw_change_note(db, size == 0);
    pthread_mutex_lock(&db->snap_mu);
    if (db->snap && size < snapshot_size(db->snap)) {
        struct err e = {0};
        if (snapshot_cow(db->snap, size, snapshot_size(db->snap) - size, &e) != 0)
            LOG_ERR("snapshot: copy-on-write failed db=%s err=%s", db->name, e.msg);
    }
    pthread_mutex_unlock(&db->snap_mu);
}

void repl_db_after_write(struct repl_db *db, uint64_t off, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (off != 0 || len < 20 || memcmp(p, "SQLite format 3", 16) != 0)
        return;
    pthread_mutex_lock(&db->mu);
    db->journal_known = true;
    if (p[18] == 2 && p[19] == 2)
        db->journal_wal = true;
    pthread_mutex_unlock(&db->mu);
}

/* Drops everything pending of db (mu not held); keeps a tombstone item if tomb. */
static void db_retire(struct repl_db *db, bool tomb)
{
    pthread_mutex_lock(&db->stage_mu);
    pthread_mutex_lock(&db->snap_mu);
    pthread_mutex_lock(&db->mu);
    snap_abandon_locked(db);
    struct item *q = db->q_head;
    db->q_head = db->q_tail = NULL;
    db->gen_open = false;
    db->has_gen = false;
    db->has_parent_hint = false;
    db->snap_running = db->snap_upload = false;
    /* nothing of the file under this name is owed to the bucket any more (a restore's
     * temporary file, written outside a WAL and renamed into place, kept a flush waiting) */
    db->watch = db->wchanged = db->renamed_in = db->unsynced = false;
    db->committed = db->staged = db->uploaded = 0;
    db->cyc_base = 0;
    db->n_cuts = 0;
    db->staged_bytes = 0;
    db->lsn_uploaded = db->lsn_staged = db->lsn_committed;
    int fd = db->wal_fd;
    db->wal_fd = -1;
    pthread_cond_broadcast(&db->cv);
    pthread_mutex_unlock(&db->mu);
    pthread_mutex_unlock(&db->snap_mu);
    pthread_mutex_unlock(&db->stage_mu);
    if (fd >= 0)
        close(fd);
    item_free_list(q);
    struct err e = {0};
    /* Remove the staging of the old name; keep the directory for the tombstone. */
    DIR *d = opendir(db->dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.' &&
                (de->d_name[1] == 0 || (de->d_name[1] == '.' && de->d_name[2] == 0)))
                continue;
            if (strcmp(de->d_name, "name") == 0)
                continue;
            char p[REPL_PATH_MAX];
            if (path_join(p, sizeof(p), db->dir, de->d_name) == 0)
                fileio_rm_rf(p, &e);
        }
        closedir(d);
    }
    if (tomb) {
        char p[REPL_PATH_MAX];
        uint8_t t[LAYOUT_TOMBSTONE_BYTES];
        layout_tombstone_encode((int64_t)time(NULL), t);
        if (path_join(p, sizeof(p), db->dir, "tombstone") == 0)
            write_small(p, t, sizeof(t), &e);
        struct item *it = item_new(ITEM_TOMBSTONE, NULL);
        pthread_mutex_lock(&db->mu);
        memset(&db->st, 0, sizeof(db->st));
        if (it)
            q_push(db, it);
        pthread_mutex_unlock(&db->mu);
        wake_uploaders(db->r);
    }
}

void repl_db_unlinked(struct repl_db *db)
{
    if (!db)
        return;
    pthread_mutex_lock(&db->r->mu);
    db->retired = true;
    if (db->refs > 0)
        db->refs--;
    pthread_mutex_unlock(&db->r->mu);
    LOG_INFO("replicator: database deleted db=%s: tombstone queued", db->name);
    db_retire(db, true);
}

struct repl_db *repl_db_renamed(struct repl_db *db, const char *new_db_name,
                                const char *new_db_path, const char *new_wal_path, struct err *err)
{
    struct replicator *r = db->r;
    repl_db_unlinked(db);
    /* A database already known under the new name was replaced: start it over. */
    pthread_mutex_lock(&r->mu);
    struct repl_db *old = NULL;
    for (struct repl_db *d = r->dbs; d; d = d->next)
        if (!d->retired && strcmp(d->name, new_db_name) == 0)
            old = d;
    if (old) {
        old->retired = true;
        old->refs = 0;
    }
    pthread_mutex_unlock(&r->mu);
    struct gen_id prev;
    bool has_prev = false;
    if (old) {
        pthread_mutex_lock(&old->mu);
        has_prev = old->has_gen;
        prev = old->gen;
        pthread_mutex_unlock(&old->mu);
        db_retire(old, false);
    }
    struct repl_db *n = db_alloc(r, new_db_name, new_db_path, new_wal_path, err);
    if (!n)
        return NULL;
    /* fresh: ignore any state left under the new name. */
    if (db_load(n, true, err) != 0) {
        db_free(n);
        return NULL;
    }
    pthread_mutex_lock(&n->mu);
    n->force_snapshot = true;
    n->need_base = true;
    n->renamed_in = true;
    if (has_prev && !n->has_gen) {
        n->has_parent_hint = true;
        n->parent_hint = prev;
    }
    pthread_mutex_unlock(&n->mu);
    LOG_INFO("replicator: database renamed db=%s -> %s", db->name, new_db_name);
    pthread_mutex_lock(&r->mu);
    n->next = r->dbs;
    r->dbs = n;
    pthread_cond_broadcast(&r->work_cv);
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* ---- stager thread ----------------------------------------------------------------------- */

static void *stager_main(void *arg)
{
    struct replicator *r = arg;
    pthread_setname_np(pthread_self(), "bfs-stager");
    int64_t last_journal_check = 0;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        int64_t now = now_ms();
        int64_t next = now + REPL_IDLE_WAIT_MS;
        struct repl_db *due[64], *watched[64];
        bool cut[64]; /* else: save the state only */
        bool hurry[64];
        size_t n_due = 0, n_watched = 0;
        bool more = false;
        for (struct repl_db *db = r->dbs; db; db = db->next) {
            pthread_mutex_lock(&db->mu);
            if (db->watch && !db->retired && (db->wnext_ms <= now || db->urgent)) {
                if (n_watched < 64) {
                    db->wnext_ms = now + REPL_WATCH_EVERY_MS;
                    hurry[n_watched] = db->urgent;
                    watched[n_watched++] = db;
                } else {
                    more = true;
                }
            }
            bool pending = db->gen_open && db->committed > db->staged;
            int64_t at = db->pending_since_ms + r->conf.batch_interval_ms;
            bool is_due = pending && (db->n_cuts > 0 || db->urgent || at <= now);
            if (!pending)
                db->urgent = false;
            if (pending && !is_due && at < next)
                next = at;
            bool dirty = db->state_dirty;
            pthread_mutex_unlock(&db->mu);
            if (is_due || dirty) {
                if (n_due < 64) {
                    cut[n_due] = is_due;
                    due[n_due++] = db;
                } else {
                    more = true;
                }
            }
        }
        pthread_mutex_unlock(&r->mu);
        for (size_t i = 0; i < n_due; i++) {
            struct repl_db *db = due[i];
            struct err e = {0};
            pthread_mutex_lock(&db->stage_mu);
            int rc = cut[i] ? stage_batch(db, false, &e) : 0; /* else only save the state */
            pthread_mutex_unlock(&db->stage_mu);
            pthread_mutex_lock(&db->mu);
            if (rc == 1 && db->committed <= db->staged)
                db->urgent = false;
            if (rc == 1 && (db->n_cuts > 0 || db->urgent))
                more = true;
            if (rc < 0 || rc > 1)
                db_set_error(db, &e);
            pthread_mutex_unlock(&db->mu);
            if (rc > 1)
                LOG_ERR("replicator: staging failed db=%s err=%s", db->name, e.msg);
            db_persist(db);
        }
        for (size_t i = 0; i < n_watched; i++)
            watch_check(watched[i], hurry[i]);
        if (now - last_journal_check > 2000) {
            last_journal_check = now;
            pthread_mutex_lock(&r->mu);
            for (struct repl_db *db = r->dbs; db; db = db->next) {
                pthread_mutex_lock(&db->mu);
                bool check = !db->retired && !db->journal_wal;
                pthread_mutex_unlock(&db->mu);
                if (check)
                    db_detect_journal(db);
            }
            pthread_mutex_unlock(&r->mu);
        }
        pthread_mutex_lock(&r->mu);
        if (!more && !r->stop) {
            struct timespec ts;
            deadline_ts(next, &ts);
            pthread_cond_timedwait(&r->stage_cv, &r->mu, &ts);
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- uploader threads -------------------------------------------------------------------- */

struct fd_sink {
    int fd;
    uint64_t len;
};

static int fd_sink_write(void *arg, const uint8_t *p, size_t len)
{
    struct fd_sink *s = arg;
    int rc = fileio_write_all(s->fd, p, len);
    if (rc == 0)
        s->len += len;
    return rc;
}

static int upload_small(struct repl_db *db, const char *key, const char *path, size_t size,
                        struct err *err)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = fileio_read_file(path, 4096, &data, &len, err);
    if (rc == ENOENT) { /* already gone (retired): nothing to do */
        err_clear(err);
        return 0;
    }
    if (rc)
        return rc;
    if (len != size) {
        free(data);
        LOG_WARN("replicator: dropping malformed staged object %s (%zu bytes)", path, len);
        unlink(path);
        return 0;
    }
    rc = s3_put_object(db->r->s3, key, data, len, err);
    free(data);
    return rc;
}

/* Whether a and b are the same queued object. */
static bool same_item(const struct item *a, const struct item *b)
{
    return a->kind == b->kind && gen_id_eq(&a->gen, &b->gen) && a->first == b->first &&
           a->last == b->last;
}

/* ---- merged uploads -------------------------------------------------------------------------
 * A segment is cut at every WAL restart (the gate must stage the old WAL's frames before SQLite
 * overwrites them), and under load SQLite restarts its WAL many times a second: 40 a second
 * for single-row inserts here. One PUT per segment would cost that many PUTs (S3 bills them)
 * and as many requests of the server. So a batch goes up at most once per batch interval:
 * the uploader holds a segment cut early until the interval of its oldest commit has passed
 * (upload_hold_until_locked) and then sends it with the segments queued behind it that
 * continue it (same generation, next frame), up to batch_max_frames frames, as one object
 * "<first>-<last>-<ts>" (ts of the newest segment: its frames were all staged by then).
 * A flush or a durable fsync waiting (hurry_lsn) sends at once. Restore sees an ordinary
 * batch.
 * Crash safety: the merged range must not change between tries, or a PUT that reached S3
 * before a crash and a retry with more segments would leave overlapping objects. So before
 * the first try the uploader makes the empty marker <gen>/<first>-<last>-<ts>.merge durable;
 * a restart merges exactly the segments it names again (same key, same bytes). After the PUT
 * the watermark is persisted, then the segments are deleted, the marker last: a marker whose
 * segments are not all there means the PUT succeeded, and db_rebuild_queue deletes the rest. */

/* The segments that go up with the head item h (mu held), at most cap: their count, copied
 * into run unless it is NULL; *last_out / *ts_out name the object; *full_out: the run cannot
 * grow (batch_max_frames or cap reached, or the next segment would pass them). */
static size_t seg_run_locked(const struct repl_db *db, const struct item *h, struct item *run,
                             size_t cap, uint32_t *last_out, uint64_t *ts_out, bool *full_out)
{
    uint32_t max = db->r->conf.batch_max_frames ? db->r->conf.batch_max_frames : 1;
    uint32_t last = h->last;
    uint64_t ts = h->ts;
    size_t n = 0;
    bool full = false;
    for (const struct item *x = h; x && n < cap; x = x->next) {
        if (x != h && (x->kind != ITEM_SEG || !gen_id_eq(&x->gen, &h->gen) ||
                       x->first != last + 1))
            break;
        if (x != h && (h->merge_last ? x->last > h->merge_last : x->last - h->first + 1 > max)) {
            full = true;
            break;
        }
        if (run) {
            run[n] = *x;
            run[n].next = NULL;
        }
        n++;
        last = x->last;
        if (x->ts > ts)
            ts = x->ts;
    }
    *full_out = full || n == cap || last - h->first + 1 >= max;
    if (h->merge_last) {
        /* the marker's range (db_rebuild_queue checked that its segments are all queued) */
        last = h->merge_last;
        ts = h->merge_ts;
    }
    *last_out = last;
    *ts_out = ts;
    return n;
}

#define REPL_RUN_MAX 4096 /* segments per merged upload */

/* Unix ms before which db's head item waits to gather more segments; 0: it goes now (mu
 * held). */
static int64_t upload_hold_until_locked(const struct repl_db *db)
{
    const struct item *h = db->q_head;
    if (!h || h->kind != ITEM_SEG || h->merge_last || h->commit_ms == 0 || db->retired ||
        (db->hurry_lsn > db->lsn_uploaded && db->hurry_lsn <= db->lsn_committed))
        return 0;
    uint32_t last;
    uint64_t ts;
    bool full;
    seg_run_locked(db, h, NULL, REPL_RUN_MAX, &last, &ts, &full);
    return full ? 0 : h->commit_ms + (int64_t)db->r->conf.batch_interval_ms;
}

/* Makes the marker of a merged upload durable (see "merged uploads"). */
static int merge_mark(struct repl_db *db, const struct item *h, uint32_t last, uint64_t ts,
                      struct err *err)
{
    char path[REPL_PATH_MAX], name[80];
    merge_name(h->first, last, ts, name, sizeof(name));
    if (gen_path(db, &h->gen, name, path, sizeof(path)) != 0)
        return ERR(err, ENAMETOOLONG, "replicator: path too long");
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return ERR(err, errno, "replicator: create %s: %s", path, errno_name(errno));
    close(fd);
    return fileio_fsync_parent(path, err);
}

/* The input of a batch: the staged segments run[0..n) (files paths[]) in order. */
struct run_src {
    const struct item *run;
    const char *const *paths;
    size_t n;
};

/* Feeds the frames of stolen WAL x (open as fd) into z, rechained (see "stolen WALs"). */
static int wseg_feed(const struct item *x, int fd, const char *path, struct compressor *z,
                     struct err *err)
{
    uint64_t fsize = wal_frame_size(x->page_size);
    uint32_t per = (uint32_t)(REPL_COPY_CHUNK / fsize), total = x->last - x->first + 1;
    if (per == 0)
        per = 1;
    uint8_t *buf = malloc((size_t)(per * fsize));
    if (!buf)
        return ERR(err, ENOMEM, "replicator: out of memory");
    uint32_t ck[2] = {x->ck_in[0], x->ck_in[1]};
    int rc = 0;
    for (uint32_t done = 0; rc == 0 && done < total;) {
        uint32_t k = total - done < per ? total - done : per;
        size_t want = (size_t)(k * fsize), got = 0;
        rc = fileio_pread_full(fd, buf, want,
                               wal_frame_offset(x->page_size, x->wal_skip + done + 1), &got);
        if (rc == 0 && got < want)
            rc = ERR(err, EIO, "replicator: %s is shorter than its frames", path);
        else if (rc)
            rc = ERR(err, rc, "replicator: read %s: %s", path, errno_name(rc));
        if (rc == 0) {
            wal_frames_rechain(x->big_endian, x->salt[0], x->salt[1], x->page_size, buf, k, ck);
            rc = compressor_write(z, buf, want, err);
        }
        done += k;
    }
    free(buf);
    return rc;
}

static int run_source(void *arg, struct compressor *z, struct err *err)
{
    const struct run_src *src = arg;
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < src->n; k++) {
        int fd = open(src->paths[k], O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return ERR(err, errno, "replicator: open %s: %s", src->paths[k], errno_name(errno));
        rc = src->run[k].wal_src ? wseg_feed(&src->run[k], fd, src->paths[k], z, err)
                                 : compressor_write_fd(z, fd, err);
        close(fd);
    }
    return rc;
}

/* PUTs the n segments of run (one generation, contiguous) as the batch first..last at ts. */
static int upload_run(struct repl_db *db, const struct item *run, size_t n, uint32_t last,
                      uint64_t ts, struct err *err)
{
    char key[LAYOUT_KEY_MAX], name[160];
    enum compression c = db->r->conf.compression;
    int rc = layout_key_batch(db->name, &run[0].gen, run[0].first, last, ts, c, key);
    if (rc)
        return ERR(err, rc, "replicator: batch key too long db=%s", db->name);
    char **paths = calloc(n, sizeof(*paths));
    if (!paths)
        return ERR(err, ENOMEM, "replicator: out of memory");
    size_t missing = 0;
    for (size_t k = 0; k < n && rc == 0; k++) {
        char path[REPL_PATH_MAX];
        seg_item_name(&run[k], name, sizeof(name));
        if (gen_path(db, &run[k].gen, name, path, sizeof(path)) != 0)
            rc = ERR(err, ENAMETOOLONG, "replicator: path too long");
        else if (!(paths[k] = strdup(path)))
            rc = ERR(err, ENOMEM, "replicator: out of memory");
        else if (access(path, F_OK) != 0 && errno == ENOENT)
            missing++;
    }
    /* All gone: dropped by a retire or a bucket check meanwhile, nothing to send. */
    if (rc == 0 && missing > 0 && missing < n)
        rc = ERR(err, ENOENT,
                 "replicator: %zu of the %zu staged segments of batch %" PRIu32 "-%" PRIu32
                 " db=%s are missing",
                 missing, n, run[0].first, last, db->name);
    if (rc == 0 && missing == 0) {
        int out = -1;
        uint64_t len = 0;
        struct run_src src = {run, (const char *const *)paths, n};
        rc = compress_source_to_tmpfile(c, db->r->conf.compression_level, run_source, &src, db->dir,
                                        &out, &len, err);
        if (rc == ENOENT && access(paths[0], F_OK) != 0)
            rc = 0; /* dropped while it was read: as above */
        else if (rc == 0) {
            rc = s3_put_object_fd(db->r->s3, key, out, len, err);
            close(out);
        }
    }
    for (size_t k = 0; k < n; k++)
        free(paths[k]);
    free(paths);
    return rc;
}

/* ---- lease ----------------------------------------------------------------------------------
 * One writer per db_name: before the first upload of a database (ITEM_VERIFY) the uploader
 * takes the lease object "<db_name>.lease" (text: "bottomlessfs-lease 1", "owner <id>",
 * "expires_ms <unix ms>", "holder <id host pid staging dir>"). The owner id belongs to the
 * staging directory (<staging_dir>/owner, random, kept across restarts), so a daemon that
 * crashed and was mounted again on the same BACKING_DIR takes its own lease back at once,
 * while a second daemon elsewhere waits for it to expire. Swift has no conditional PUT:
 * take = GET (free, expired or ours?) -> PUT -> wait REPL_LEASE_SETTLE_MS -> GET and compare
 * with what was written (the last writer of a race wins, the others see its content and back
 * off). Renewed every ttl/3 by an uploader; lost (another owner found at a renewal) -> the
 * database stops uploading and checks the bucket again before it resumes. Released (deleted)
 * by repl_free when still ours, and by the renewal of a database idle for a whole ttl (nothing
 * to upload, no commit): an idle database then costs no requests at all, where renewing cost
 * a GET and a PUT every ttl/3, forever, for every database the mount had seen. Its next
 * object to upload takes the lease again first (lease_reclaim_locked: a VERIFY item expecting
 * the generation it left in the bucket), so a writer that came meanwhile is noticed as at a
 * lost lease. A blocked database keeps staging locally; status last_error
 * and one ERR line name the holder. */
#define REPL_LEASE_MAGIC "bottomlessfs-lease 1"
#define REPL_LEASE_SETTLE_MS 300
#define REPL_LEASE_BODY_MAX 2048

struct lease_info {
    char owner[64];
    int64_t expires_ms;
    char holder[256];
};

static int lease_key(const char *db_name, char out[LAYOUT_KEY_MAX])
{
    int n = snprintf(out, LAYOUT_KEY_MAX, "%s.lease", db_name);
    return (n < 0 || n >= LAYOUT_KEY_MAX) ? ENAMETOOLONG : 0;
}

/* Parses a lease body: false when it is not one (treated as no lease, with a warning). */
static bool lease_parse(const char *p, size_t len, struct lease_info *out)
{
    memset(out, 0, sizeof(*out));
    char *t = strndup(p, len);
    if (!t)
        return false;
    bool magic = false, owner = false, exp = false;
    char *save = NULL;
    for (char *ln = strtok_r(t, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        if (strcmp(ln, REPL_LEASE_MAGIC) == 0) {
            magic = true;
        } else if (strncmp(ln, "owner ", 6) == 0 && strlen(ln + 6) < sizeof(out->owner)) {
            snprintf(out->owner, sizeof(out->owner), "%s", ln + 6);
            owner = out->owner[0] != 0;
        } else if (strncmp(ln, "expires_ms ", 11) == 0) {
            char *end = NULL;
            long long v = strtoll(ln + 11, &end, 10);
            exp = end && *end == 0 && v > 0;
            out->expires_ms = v;
        } else if (strncmp(ln, "holder ", 7) == 0) {
            snprintf(out->holder, sizeof(out->holder), "%s", ln + 7);
        }
    }
    free(t);
    return magic && owner && exp;
}

/* GET the lease: 0 with *found; other errors as s3. */
static int lease_read(struct repl_db *db, struct lease_info *out, bool *found, struct buf *raw,
                      struct err *err)
{
    char key[LAYOUT_KEY_MAX];
    *found = false;
    if (lease_key(db->name, key) != 0)
        return ERR(err, ENAMETOOLONG, "lease: key too long db=%s", db->name);
    buf_reset(raw);
    int rc = s3_get_object(db->r->s3, key, raw, err);
    if (rc == ENOENT) {
        err_clear(err);
        return 0;
    }
    if (rc)
        return rc;
    if (!lease_parse((const char *)raw->data, raw->len, out)) {
        LOG_WARN("lease: ignoring a malformed lease object key=%s (%zu bytes)", key, raw->len);
        return 0;
    }
    *found = true;
    return 0;
}

static int lease_write(struct repl_db *db, struct buf *body, struct err *err)
{
    char key[LAYOUT_KEY_MAX];
    uint32_t ttl = db->r->conf.lease_ttl_ms;
    if (lease_key(db->name, key) != 0)
        return ERR(err, ENAMETOOLONG, "lease: key too long db=%s", db->name);
    buf_reset(body);
    int rc =
        buf_appendf(body, "%s\nowner %s\nexpires_ms %" PRId64 "\nholder %s\n", REPL_LEASE_MAGIC,
                    db->r->owner_id, now_ms() + (int64_t)ttl, db->r->owner_desc);
    if (rc)
        return ERR(err, rc, "lease: out of memory");
    return s3_put_object(db->r->s3, key, body->data, body->len, err);
}

static void lease_set_blocked(struct repl_db *db, const struct lease_info *li, struct err *err)
{
    int64_t left = li->expires_ms - now_ms();
    pthread_mutex_lock(&db->mu);
    bool first = !db->lease_blocked;
    db->lease_blocked = true;
    db->lease_held = false;
    snprintf(db->lease_holder, sizeof(db->lease_holder), "%s", li->holder);
    pthread_mutex_unlock(&db->mu);
    ERR(err, EEXIST,
        "lease: database is replicated by another writer (%s, lease expires in %" PRId64
        " s): not uploading it, staging locally; unmount the other writer or wait",
        li->holder[0] ? li->holder : li->owner, left > 0 ? left / 1000 : 0);
    if (first)
        LOG_ERR("lease: refused db=%s holder=\"%s\" expires_in=%" PRId64
                "s: this daemon will not replicate the database while the other writer "
                "holds it (two writers would fork its history)",
                db->name, li->holder[0] ? li->holder : li->owner, left > 0 ? left / 1000 : 0);
}

/* Takes the lease: 0 (held), EEXIST (another writer holds it), or an S3 error (retry). */
static int lease_acquire(struct repl_db *db, struct err *err)
{
    struct buf raw, mine;
    struct lease_info li;
    bool found = false;
    int rc;
    buf_init(&raw, REPL_LEASE_BODY_MAX);
    buf_init(&mine, REPL_LEASE_BODY_MAX);
    rc = lease_read(db, &li, &found, &raw, err);
    if (rc)
        goto out;
    if (found && strcmp(li.owner, db->r->owner_id) != 0 && li.expires_ms > now_ms()) {
        lease_set_blocked(db, &li, err);
        rc = EEXIST;
        goto out;
    }
    if ((rc = lease_write(db, &mine, err)) != 0)
        goto out;
    struct timespec ts = {0, REPL_LEASE_SETTLE_MS * 1000000L};
    nanosleep(&ts, NULL); /* let a concurrent writer's PUT land before re-reading */
    if ((rc = lease_read(db, &li, &found, &raw, err)) != 0)
        goto out;
    if (!found || raw.len != mine.len || memcmp(raw.data, mine.data, raw.len) != 0) {
        if (!found) /* deleted right away: somebody released it; try again later */
            snprintf(li.holder, sizeof(li.holder), "unknown (lease vanished)");
        lease_set_blocked(db, &li, err);
        rc = EEXIST;
        goto out;
    }
    pthread_mutex_lock(&db->mu);
    bool was_blocked = db->lease_blocked;
    db->lease_held = true;
    db->lease_blocked = false;
    db->lease_idle = false;
    db->lease_holder[0] = 0;
    db->lease_taken_ms = now_ms();
    db->lease_renew_at_ms = db->lease_taken_ms + db->r->conf.lease_ttl_ms / 3;
    pthread_mutex_unlock(&db->mu);
    if (was_blocked)
        LOG_INFO("lease: acquired db=%s (the other writer is gone)", db->name);
out:
    buf_free(&raw);
    buf_free(&mine);
    return rc;
}

static bool db_drained(struct repl_db *db, uint64_t target);

/* mu held. Nothing of the database waits to go up (what a flush waits for) and it has had no
 * commit (nor upload, nor lease taken) for a whole ttl. Only a database with a generation in
 * the bucket: that is what the reclaim expects to find there again. */
static bool lease_idle_locked(struct repl_db *db, int64_t now)
{
    int64_t last = db->last_commit_ms;
    if (db->last_upload_ms > last)
        last = db->last_upload_ms;
    if (db->lease_taken_ms > last)
        last = db->lease_taken_ms;
    return db->has_gen && !db->need_base && db_drained(db, db->lsn_committed) &&
           now - last >= (int64_t)db->r->conf.lease_ttl_ms;
}

/* mu held. A database that gave its lease up takes it again before anything else of it goes
 * up: a VERIFY item at the head of its queue (lease, then the bucket check, expecting the
 * generation it left there). false: out of memory, try again at the next pass. */
static bool lease_reclaim_locked(struct repl_db *db)
{
    if (!db->lease_idle)
        return true;
    if (!(db->q_head && db->q_head->kind == ITEM_VERIFY)) {
        struct item *v = item_new(ITEM_VERIFY, NULL);
        if (!v)
            return false;
        v->has_expect = true; /* lease_idle_locked: only with a generation */
        v->expect = db->lease_idle_gen;
        q_push_front(db, v);
    }
    db->lease_idle = false;
    return true;
}

/* Renews a held lease, or releases it when the database is idle (lease_idle_locked); on
 * finding another owner the lease is lost and a VERIFY item goes to the head of the queue
 * (uploads stop until it is taken again and the bucket re-checked). */
static int lease_renew(struct repl_db *db, struct err *err)
{
    pthread_mutex_lock(&db->mu);
    bool idle = lease_idle_locked(db, now_ms());
    if (idle) {
        db->lease_held = false;
        db->lease_idle = true;
        db->lease_idle_gen = db->gen;
    }
    pthread_mutex_unlock(&db->mu);
    if (idle) {
        lease_release(db);
        LOG_DEBUG("lease: given up db=%s (idle %u s; taken again before its next upload)",
                  db->name, db->r->conf.lease_ttl_ms / 1000);
        return 0;
    }

    struct buf raw, mine;
    struct lease_info li;
    bool found = false;
    buf_init(&raw, REPL_LEASE_BODY_MAX);
    buf_init(&mine, REPL_LEASE_BODY_MAX);
    int rc = lease_read(db, &li, &found, &raw, err);
    if (rc == 0 && found && strcmp(li.owner, db->r->owner_id) != 0) {
        struct item *v = item_new(ITEM_VERIFY, NULL);
        lease_set_blocked(db, &li, err);
        pthread_mutex_lock(&db->mu);
        if (v) {
            v->has_expect = db->has_gen;
            v->expect = db->gen;
            q_push_front(db, v);
        }
        pthread_mutex_unlock(&db->mu);
        LOG_ERR("lease: lost db=%s to \"%s\": uploads stop", db->name, li.holder);
        rc = EEXIST;
    } else if (rc == 0) {
        rc = lease_write(db, &mine, err);
    }
    pthread_mutex_lock(&db->mu);
    if (rc == 0)
        db->lease_renew_at_ms = now_ms() + db->r->conf.lease_ttl_ms / 3;
    else if (rc != EEXIST)
        db->lease_renew_at_ms = now_ms() + 1000; /* S3 trouble: try again soon */
    pthread_mutex_unlock(&db->mu);
    buf_free(&raw);
    buf_free(&mine);
    return rc;
}

/* Deletes the lease when it is still ours (repl_free; best effort). */
static void lease_release(struct repl_db *db)
{
    struct buf raw;
    struct lease_info li;
    bool found = false;
    struct err e = {0};
    char key[LAYOUT_KEY_MAX];
    buf_init(&raw, REPL_LEASE_BODY_MAX);
    if (lease_read(db, &li, &found, &raw, &e) == 0 && found &&
        strcmp(li.owner, db->r->owner_id) == 0 && lease_key(db->name, key) == 0 &&
        s3_delete_object(db->r->s3, key, &e) == 0)
        LOG_DEBUG("lease: released db=%s", db->name);
    else if (e.code)
        LOG_WARN("lease: could not release db=%s err=%s (it expires by itself)", db->name, e.msg);
    buf_free(&raw);
}

/* The staging area's identity: <staging_dir>/owner (32 hex chars), created once. */
static int owner_init(struct replicator *r, struct err *err)
{
    char path[REPL_PATH_MAX];
    uint8_t *data = NULL;
    size_t len = 0;
    if (path_join(path, sizeof(path), r->staging_dir, "owner") != 0)
        return ERR(err, ENAMETOOLONG, "replicator: staging path too long");
    if (fileio_read_file(path, 64, &data, &len, NULL) == 0 && len == 32) {
        memcpy(r->owner_id, data, 32);
        r->owner_id[32] = 0;
    } else {
        uint8_t rnd[16];
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            free(data);
            return ERR(err, EIO, "replicator: no random bytes for the lease owner id");
        }
        for (int i = 0; i < 16; i++)
            snprintf(r->owner_id + 2 * i, 3, "%02x", rnd[i]);
        int rc = fileio_write_atomic(path, r->owner_id, 32, 0600, err);
        if (rc) {
            free(data);
            return rc;
        }
    }
    free(data);
    for (int i = 0; i < 32; i++) {
        char c = r->owner_id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            r->owner_id[i] = '0'; /* a damaged file still gives a usable, stable id */
    }
    char host[128] = "";
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "unknown");
    for (char *p = host; *p; p++)
        if ((unsigned char)*p < 0x21 || *p == 0x7f)
            *p = '?';
    snprintf(r->owner_desc, sizeof(r->owner_desc), "id=%s host=%s pid=%ld staging=%.200s",
             r->owner_id, host, (long)getpid(), r->staging_dir);
    for (char *p = r->owner_desc; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return 0;
}

/* Removes the staging directory of generation g, dropped before any of it was uploaded, and
 * a finished snapshot file in it (snap_find_file would upload it as a generation without a
 * .meta). A snapshot still being built keeps its side file: its owner unlinks it, and rmdir
 * then fails harmlessly. */
static void gen_dir_discard(struct repl_db *db, const struct gen_id *g)
{
    char gdir[REPL_PATH_MAX], path[REPL_PATH_MAX];
    if (gen_path(db, g, NULL, gdir, sizeof(gdir)) != 0)
        return;
    DIR *d = opendir(gdir);
    if (d) {
        struct dirent *de;
        enum compression c;
        while ((de = readdir(d)) != NULL) {
            if (strncmp(de->d_name, "db.", 3) == 0 && layout_snapshot_parse(de->d_name, &c) == 0 &&
                path_join(path, sizeof(path), gdir, de->d_name) == 0)
                unlink(path);
        }
        closedir(d);
    }
    rmdir(gdir);
}

/* The header of db's file as a generation's header, for a generation with no WAL of its own:
 * page size from the database header, no frames, so no checksum seeds. false when the file
 * is not a database in WAL mode (bytes 18-19 are 2) with at least one page. */
static bool db_file_hdrinfo(const struct repl_db *db, struct hdrinfo *h)
{
    uint8_t b[100];
    uint64_t size;
    if (!db_header_read(db, b, &size) || b[18] != 2 || b[19] != 2)
        return false;
    uint32_t ps = ((uint32_t)b[16] << 8) | b[17];
    if (ps == 1)
        ps = 65536;
    if (!wal_page_size_valid(ps) || size < ps)
        return false;
    *h = (struct hdrinfo){.page_size = ps};
    return true;
}

/* A snapshot-only generation of the db file as it is now (the next -wal begins the next
 * one), for a database the bucket does not hold and no WAL generation would carry:
 * - from upload_verify (watched false): a renamed database the bucket has no generation of.
 *   Left alone after the rename it would stay out of the bucket (its old name tombstoned)
 *   until its next commit, while the status said it was in.
 * - from the stager (watched true, see watch_check): a file written outside any WAL, copied
 *   in with cp or overwritten, once it has stopped changing. Not earlier: cp writes in chunks,
 *   and a snapshot taken meanwhile would hold a torn copy. The file stays watched: a change
 *   after this snapshot (a cp that paused) takes another one, which is then the only base.
 * A file that is not a database in WAL mode is left alone until it changes. */
static int gen_begin_unbacked(struct repl_db *db, bool watched, bool hurried,
                              struct err *err)
{
    struct hdrinfo h;
    struct file_sig sig;
    int rc = 0;

    pthread_mutex_lock(&db->r->mu);
    bool retired = db->retired;
    pthread_mutex_unlock(&db->r->mu);
    if (retired)
        return 0;
    pthread_mutex_lock(&db->stage_mu);
    pthread_mutex_lock(&db->gen_mu); /* the hot path begins no generation meanwhile */
    bool have_sig = file_sig_of(db->db_path, &sig);
    pthread_mutex_lock(&db->mu);
    /* watched: any closed generation's frames are staged (gen_close_locked) and go up first */
    bool frameless = db->committed == 0;
    bool idle = !db->gen_open && (watched ? db->wchanged
                                          : frameless && db->renamed_in && !db->has_gen);
    bool unsynced = db->unsynced;
    pthread_mutex_unlock(&db->mu);
    /* After an unsynced restart the file is whole only once the app has closed the database
     * (SQLite deletes the -wal at the last close, and closing flushed what the kernel held),
     * or at unmount; a pause in its writes is not enough. */
    if (idle && unsynced && !hurried && access(db->wal_path, F_OK) == 0)
        idle = false;
    bool is_db = idle && db_file_hdrinfo(db, &h);
    if (idle && !watched && !is_db) { /* not a database in WAL mode: nothing to upload */
        pthread_mutex_lock(&db->mu);
        db->renamed_in = false;
        pthread_mutex_unlock(&db->mu);
    }
    if (is_db && watched) {
        pthread_mutex_lock(&db->mu);
        db->force_snapshot = true;
        db->need_base = true;
        pthread_mutex_unlock(&db->mu);
    }
    if (is_db && (rc = gen_begin(db, &h, err)) == 0) {
        pthread_mutex_lock(&db->mu);
        db->gen_open = false;
        if (frameless)
            db->lsn_staged = db->lsn_uploaded = db->lsn_committed;
        pthread_mutex_unlock(&db->mu);
        if (watched && unsynced)
            LOG_INFO("replicator: database closed after a WAL restart it did not sync: its "
                     "snapshot goes up now db=%s gen=%s",
                     db->name, db->gen_str);
        else if (watched && hurried)
            LOG_INFO("replicator: database written outside a WAL (copied in?) and a flush "
                     "waits: its snapshot goes up now db=%s gen=%s",
                     db->name, db->gen_str);
        else if (watched)
            LOG_INFO("replicator: database written outside a WAL (copied in?) and unchanged "
                     "for %d s: its snapshot goes up now db=%s gen=%s",
                     REPL_SETTLE_MS / 1000, db->name, db->gen_str);
        else
            LOG_INFO("replicator: renamed database not written since: its snapshot goes up "
                     "now db=%s gen=%s",
                     db->name, db->gen_str);
    }
    if (idle && watched && rc == 0) {
        pthread_mutex_lock(&db->mu);
        db->watch = true;
        db->wchanged = false;
        db->unsynced = false;
        if (have_sig)
            db->wsig = sig;
        pthread_mutex_unlock(&db->mu);
    }
    pthread_mutex_unlock(&db->gen_mu);
    pthread_mutex_unlock(&db->stage_mu);
    if (watched && idle && rc == 0)
        wake_uploaders(db->r);
    return rc;
}

/* upload_verify found that the bucket may not hold db's file as it is (unheld: it has no
 * generation of it; else the file changed since it became known, e.g. overwritten right
 * after its lazy restore), and no generation here carries it: the stager watches it until it
 * settles (see watch_check). A commit before then begins a generation instead. */
static void watch_arm(struct repl_db *db, bool unheld)
{
    struct file_sig sig;
    bool have = file_sig_of(db->db_path, &sig);
    pthread_mutex_lock(&db->mu);
    if (have && !db->has_gen && !db->gen_open && db->committed == 0) {
        /* already changing (raw_change_locked) stays so */
        db->wchanged =
            (unheld || !file_sig_eq(&sig, &db->wsig) || db->wchanged) && may_be_wal_locked(db);
        db->watch = true;
        db->wsig = sig;
        db->wsince_ms = now_ms();
    }
    pthread_mutex_unlock(&db->mu);
}

/* The stager's look at a watched db (see gen_begin_unbacked): a change restarts the wait; a
 * file unchanged for REPL_SETTLE_MS (at once when a flush hurries it: nothing writes
 * through an unmounted filesystem) gets its snapshot-only generation. mu NOT held. */
static void watch_check(struct repl_db *db, bool hurry)
{
    struct file_sig sig;
    int64_t now = now_ms();
    if (!file_sig_of(db->db_path, &sig))
        return; /* gone: its unlink retires db */
    pthread_mutex_lock(&db->mu);
    if (db->watch && !file_sig_eq(&sig, &db->wsig)) {
        db->wsig = sig;
        db->wchanged = may_be_wal_locked(db);
        db->wsince_ms = now;
    }
    bool due = db->wchanged && (hurry || now - db->wsince_ms >= REPL_SETTLE_MS);
    pthread_mutex_unlock(&db->mu);
    if (!due)
        return;
    struct err e = {0};
    if (gen_begin_unbacked(db, true, hurry, &e) != 0) {
        pthread_mutex_lock(&db->mu);
        db->wsince_ms = now; /* tried again after another wait */
        db_set_error(db, &e);
        pthread_mutex_unlock(&db->mu);
        LOG_ERR("replicator: snapshot of a database written outside a WAL failed db=%s err=%s",
                db->name, e.msg);
    }
}

/* Checks the bucket before the first upload of db (see repl_db_open). */
static int upload_verify(struct repl_db *db, const struct item *it, struct err *err)
{
    struct gen_id *ids = NULL;
    size_t n = 0;
    int rc = lease_acquire(db, err);
    if (rc)
        return rc;
    rc = layout_list_generations(db->r->s3, db->name, &ids, &n, err);
    if (rc)
        return rc;
    int64_t tomb = 0;
    struct err te = {0};
    if (layout_read_tombstone(db->r->s3, db->name, &tomb, &te) == 0) {
        char key[LAYOUT_KEY_MAX];
        /* A live database owns the name again. */
        if (layout_key_tombstone(db->name, key) == 0 &&
            s3_delete_object(db->r->s3, key, err) != 0) {
            free(ids);
            return err->code;
        }
    }
    if (n == 0) {
        free(ids);
        pthread_mutex_lock(&db->mu);
        bool renamed = db->renamed_in;
        pthread_mutex_unlock(&db->mu);
        if (renamed)
            return gen_begin_unbacked(db, false, false, err);
        watch_arm(db, true);
        return 0;
    }
    struct gen_id newest = ids[0];
    free(ids);
    char ns[GEN_ID_STR_LEN + 1], es[GEN_ID_STR_LEN + 1];
    gen_id_format(&newest, ns);
    if (it->has_expect) {
        if (gen_id_eq(&newest, &it->expect) || gen_id_cmp(&it->expect, &newest) < 0)
            return 0; /* ours, or ours is newer (not uploaded yet) */
        gen_id_format(&it->expect, es);
        LOG_WARN("replicator: local database and bucket diverged db=%s local_gen=%s "
                 "bucket_gen=%s: keeping both, starting a new generation with .dep to %s and "
                 "a snapshot",
                 db->name, es, ns, ns);
    }
    /* Our next generation descends from the bucket's newest and takes a snapshot (the local
     * file is not known to continue it). A generation already open: if it was started here
     * without a parent and has its own snapshot, it just gets the .dep; otherwise it is
     * restarted from frame 1 of the current WAL as a new generation. With no generation open
     * but local-only ones queued, a snapshot-only generation begins at once: whichever way the
     * app's writes raced this check, the newest generation afterwards names the bucket's.
     * gen_mu keeps the hot path from beginning a generation of its own meanwhile. */
    pthread_mutex_lock(&db->stage_mu);
    pthread_mutex_lock(&db->gen_mu);
    pthread_mutex_lock(&db->mu);
    db->has_parent_hint = true;
    db->parent_hint = newest;
    db->force_snapshot = true;
    db->need_base = true;
    bool has_gen = db->has_gen;
    bool open_gen = has_gen && db->gen_open;
    bool renamed_in = db->renamed_in;
    struct gen_id cur = db->gen;
    bool own_snap = open_gen && !db->gen_has_dep && gen_id_eq(&db->snap_gen, &cur) &&
                    (db->snap_running || db->snap_upload);
    struct hdrinfo h = db->ch;                     /* the current WAL's header */
    uint32_t committed = db->committed - db->cyc_base; /* its committed frames */
    pthread_mutex_unlock(&db->mu);
    if (open_gen && own_snap && !it->has_expect) {
        char path[REPL_PATH_MAX];
        uint8_t dep[LAYOUT_DEP_BYTES];
        layout_dep_encode(&newest, dep);
        struct item *d = item_new(ITEM_DEP, &cur);
        rc = gen_path(db, &cur, ".dep", path, sizeof(path));
        if (!rc)
            rc = write_small(path, dep, sizeof(dep), err);
        if (!rc && !d)
            rc = ERR(err, ENOMEM, "replicator: out of memory");
        pthread_mutex_lock(&db->mu);
        if (!rc) {
            /* right after the VERIFY item at the head */
            if (db->q_head) {
                d->next = db->q_head->next;
                db->q_head->next = d;
                if (db->q_tail == db->q_head)
                    db->q_tail = d;
            } else {
                q_push(db, d);
            }
            d = NULL;
            db->gen_has_dep = true;
            db->has_parent_hint = false;
            db->force_snapshot = false;
            db->need_base = false;
        }
        pthread_mutex_unlock(&db->mu);
        free(d);
    } else {
        /* Objects queued behind the VERIFY item are local-only (nothing uploads before it).
         * Without an expectation they were started here without knowing the bucket: a
         * parentless lineage beside the bucket's history, i.e. a fork. They are dropped, with
         * their staged files; the new generation below holds their content (its snapshot is
         * the db file now). With one (divergence) they continue this machine's own history
         * and are kept (README, "Diverged bucket"). */
        bool had_local = false;
        struct item *dropped = NULL;
        pthread_mutex_lock(&db->mu);
        struct item **pp = &db->q_head;
        db->q_tail = NULL;
        while (*pp) {
            struct item *x = *pp;
            bool data = x->kind != ITEM_VERIFY && x->kind != ITEM_TOMBSTONE;
            had_local |= data;
            if (data && !it->has_expect) {
                *pp = x->next;
                if (x->kind == ITEM_SEG)
                    db->staged_bytes -= x->bytes < db->staged_bytes ? x->bytes : db->staged_bytes;
                x->next = dropped;
                dropped = x;
                continue;
            }
            db->q_tail = x;
            pp = &x->next;
        }
        db->gen_open = false;
        db->n_cuts = 0;
        pthread_mutex_unlock(&db->mu);
        for (struct item *x = dropped; x; x = x->next)
            item_done_cleanup(db, x); /* stage_mu held: no segment is being cut */
        /* A generation now, even when the -wal is gone (the sqlite3 shell deletes it on
         * close): its snapshot holds everything committed, and it - not a local-only
         * generation that began before this check - is the newest, naming the bucket's.
         * With the -wal open it restages the WAL's committed frames on top. */
        if ((open_gen || (had_local && has_gen)) && (rc = gen_begin(db, &h, err)) == 0) {
            pthread_mutex_lock(&db->mu);
            if (!open_gen) {
                db->gen_open = false; /* snapshot only: the next -wal begins the next one */
                if (!it->has_expect)
                    db->lsn_staged = db->lsn_uploaded = db->lsn_committed;
            } else {
                db->committed = committed;
                db->staged = 0;
                /* Frames 1..committed are staged again in the new generation: count them
                 * once, and as not uploaded (a durable fsync must wait for them). Older
                 * frames whose segments were dropped are in the snapshot. */
                db->lsn_staged = db->lsn_committed >= committed ? db->lsn_committed - committed : 0;
                if (db->lsn_uploaded > db->lsn_staged || !it->has_expect)
                    db->lsn_uploaded = db->lsn_staged;
                if (committed > 0) {
                    db->pending_since_ms = now_ms();
                    db->urgent = true;
                }
            }
            pthread_mutex_unlock(&db->mu);
        }
        /* The dropped generations' directories go too, with any finished snapshot file in
         * them (it would otherwise be uploaded as a generation with no .meta). */
        for (struct item *x = dropped; x; x = x->next) {
            if (x->kind == ITEM_META)
                gen_dir_discard(db, &x->gen);
        }
        item_free_list(dropped);
    }
    pthread_mutex_unlock(&db->gen_mu);
    pthread_mutex_unlock(&db->stage_mu);
    /* A database renamed over one the bucket holds (mv new.db app.db, a restore's temporary
     * file renamed into place) and not written since: nothing else would ever upload it, and
     * the bucket would go on restoring the database it replaced. It goes up now, as a
     * snapshot-only generation naming the bucket's newest. */
    if (rc == 0 && renamed_in && !open_gen) /* (no-op once a generation began above) */
        rc = gen_begin_unbacked(db, false, false, err);
    if (rc == 0 && !it->has_expect)
        watch_arm(db, false);
    return rc;
}

/* Uploads the segment item it (a copy of db's queue head) with the segments merged with it
 * (see "merged uploads"), writing the marker first when it merges more than itself. *run_out
 * (malloc'ed, *n_out entries, the head first with its merge fields set) are the items sent. */
static int upload_seg_head(struct repl_db *db, const struct item *it, struct item **run_out,
                           size_t *n_out, struct err *err)
{
    struct item *run = NULL;
    uint32_t last = it->last;
    uint64_t ts = it->ts;
    size_t n = 0;
    bool full;
    *run_out = NULL;
    *n_out = 0;
    /* counted, then copied, in one hold of mu: sized to the run, usually a few segments */
    pthread_mutex_lock(&db->mu);
    const struct item *h = db->q_head;
    if (h && same_item(h, it))
        n = seg_run_locked(db, h, NULL, REPL_RUN_MAX, &last, &ts, &full);
    run = malloc((n ? n : 1) * sizeof(*run));
    if (run && n)
        n = seg_run_locked(db, h, run, n, &last, &ts, &full);
    pthread_mutex_unlock(&db->mu);
    if (!run)
        return ERR(err, ENOMEM, "replicator: out of memory");
    *run_out = run;
    if (n == 0) { /* dropped meanwhile: its files are gone, a no-op */
        run[0] = *it;
        *n_out = 1;
        return upload_run(db, run, 1, it->last, it->ts, err);
    }
    if (run[0].merge_last && run[n - 1].last != run[0].merge_last) {
        /* cannot happen: the queue loses segments only all at once (retire, bucket check) */
        return ERR(err, EIO,
                   "replicator: the staged segments of batch %" PRIu32 "-%" PRIu32
                   " db=%s are not all queued",
                   run[0].first, run[0].merge_last, db->name);
    }
    if (n > 1 && !run[0].merge_last) {
        struct err me = {0};
        if (merge_mark(db, &run[0], last, ts, &me) != 0) {
            LOG_WARN("replicator: cannot record a merged batch db=%s err=%s (sending segment "
                     "%" PRIu32 "-%" PRIu32 " alone)",
                     db->name, me.msg, run[0].first, run[0].last);
            n = 1;
            last = run[0].last;
            ts = run[0].ts;
        } else {
            run[0].merge_last = last;
            run[0].merge_ts = ts;
            pthread_mutex_lock(&db->mu);
            struct item *q = db->q_head;
            if (q && same_item(q, &run[0])) {
                q->merge_last = last;
                q->merge_ts = ts;
            }
            pthread_mutex_unlock(&db->mu);
        }
    }
    *n_out = n;
    return upload_run(db, run, n, last, ts, err);
}

/* Uploads the queue head it (a copy). *run_out / *n_out: for a segment, the segments sent
 * (upload_seg_head; the caller frees *run_out), else NULL / 0. */
static int upload_item(struct repl_db *db, const struct item *it, struct item **run_out,
                       size_t *n_out, struct err *err)
{
    char key[LAYOUT_KEY_MAX], path[REPL_PATH_MAX];
    int rc = 0;

    *run_out = NULL;
    *n_out = 0;
    switch (it->kind) {
    case ITEM_LEASE:
        return lease_renew(db, err);
    case ITEM_VERIFY:
        return upload_verify(db, it, err);
    case ITEM_TOMBSTONE: {
        if (layout_key_tombstone(db->name, key) != 0 ||
            path_join(path, sizeof(path), db->dir, "tombstone") != 0)
            return ERR(err, ENAMETOOLONG, "replicator: tombstone key too long");
        /* A name the bucket never held (a temporary file renamed into place, as a restore
         * into the mount makes) needs no tombstone: it would only litter the bucket. */
        struct gen_id *ids = NULL;
        size_t n = 0;
        if ((rc = layout_list_generations(db->r->s3, db->name, &ids, &n, err)) != 0)
            return rc;
        free(ids);
        if (n == 0) {
            unlink(path);
            LOG_DEBUG("replicator: no tombstone for db=%s: the bucket has none of it", db->name);
            return 0;
        }
        return upload_small(db, key, path, LAYOUT_TOMBSTONE_BYTES, err);
    }
    case ITEM_DEP:
        if (layout_key_dep(db->name, &it->gen, key) != 0 ||
            gen_path(db, &it->gen, ".dep", path, sizeof(path)) != 0)
            return ERR(err, ENAMETOOLONG, "replicator: key too long");
        return upload_small(db, key, path, LAYOUT_DEP_BYTES, err);
    case ITEM_META:
        if (layout_key_meta(db->name, &it->gen, key) != 0 ||
            gen_path(db, &it->gen, ".meta", path, sizeof(path)) != 0)
            return ERR(err, ENAMETOOLONG, "replicator: key too long");
        return upload_small(db, key, path, LAYOUT_META_BYTES, err);
    case ITEM_SEG:
        return upload_seg_head(db, it, run_out, n_out, err);
    }
    return rc;
}

static void item_done_cleanup(struct repl_db *db, const struct item *it)
{
    char path[REPL_PATH_MAX];
    switch (it->kind) {
    case ITEM_VERIFY:
    case ITEM_LEASE:
        return;
    case ITEM_TOMBSTONE:
        if (path_join(path, sizeof(path), db->dir, "tombstone") == 0)
            unlink(path);
        return;
    case ITEM_DEP:
        if (gen_path(db, &it->gen, ".dep", path, sizeof(path)) == 0)
            unlink(path);
        return;
    case ITEM_META:
        if (gen_path(db, &it->gen, ".meta", path, sizeof(path)) == 0)
            unlink(path);
        return;
    case ITEM_SEG:
        if (gen_path(db, &it->gen, NULL, path, sizeof(path)) == 0)
            seg_files_unlink(path, it);
        return;
    }
}

static void *uploader_main(void *arg)
{
    struct replicator *r = arg;
    pthread_setname_np(pthread_self(), "bfs-upload");
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        int64_t now = now_ms();
        struct repl_db *pick = NULL;
        struct item it;
        int64_t next = now + REPL_IDLE_WAIT_MS;
        for (struct repl_db *db = r->dbs; db && !pick; db = db->next) {
            if (db->busy)
                continue;
            pthread_mutex_lock(&db->mu);
            if (db->lease_held && !db->retired) {
                if (db->lease_renew_at_ms <= now) {
                    pick = db;
                    memset(&it, 0, sizeof(it));
                    it.kind = ITEM_LEASE;
                    pthread_mutex_unlock(&db->mu);
                    break;
                }
                if (db->lease_renew_at_ms < next)
                    next = db->lease_renew_at_ms;
            }
            /* a tombstone goes up without the lease: its database is gone here */
            if (db->q_head && db->q_head->kind != ITEM_TOMBSTONE && !lease_reclaim_locked(db)) {
                pthread_mutex_unlock(&db->mu);
                continue;
            }
            if (db->q_head) {
                int64_t at = upload_hold_until_locked(db);
                if (at < db->retry_at_ms)
                    at = db->retry_at_ms;
                if (at <= now) {
                    pick = db;
                    it = *db->q_head;
                } else if (at < next) {
                    next = at;
                }
            }
            pthread_mutex_unlock(&db->mu);
        }
        if (!pick) {
            struct timespec ts;
            deadline_ts(next, &ts);
            pthread_cond_timedwait(&r->work_cv, &r->mu, &ts);
            continue;
        }
        pick->busy = true;
        pthread_mutex_unlock(&r->mu);

        struct err e = {0};
        struct item *run = NULL;
        size_t n_run = 0;
        int rc = upload_item(pick, &it, &run, &n_run, &e);
        /* what went up: a merged batch's segments, else the item itself */
        const struct item *sent = run ? run : &it;
        size_t n_sent = run ? n_run : 1;

        pthread_mutex_lock(&r->mu);
        pick->busy = false;
        bool ended_outage = false, started_outage = false;
        char fail_gen[GEN_ID_STR_LEN + 1] = "none"; /* the failing object's generation */
        int64_t outage_ms = 0;
        unsigned outage_retries = 0;
        pthread_mutex_lock(&pick->mu);
        if (it.kind == ITEM_LEASE || (rc == EEXIST && it.kind == ITEM_VERIFY)) {
            /* lease trouble is not an S3 outage: no backoff of the data, a message */
            if (rc)
                db_set_error(pick, &e);
            if (rc == EEXIST && it.kind == ITEM_VERIFY) {
                uint32_t wait = r->conf.lease_ttl_ms / 3;
                pick->retry_at_ms = now_ms() + (wait < 1000 ? 1000 : wait);
            }
            pthread_mutex_unlock(&pick->mu);
            if (rc && rc != EEXIST)
                LOG_WARN("lease: renewal failed db=%s err=%s", pick->name, e.msg);
            continue; /* r->mu held, as at the top of the loop */
        }
        if (rc == 0) {
            /* Pop what was sent while it is still the head (a retire may have dropped the
             * queue). */
            for (size_t k = 0; k < n_sent; k++) {
                struct item *h = pick->q_head;
                if (h && same_item(h, &sent[k])) {
                    pick->q_head = h->next;
                    if (!pick->q_head)
                        pick->q_tail = NULL;
                    free(h);
                }
            }
            if (it.kind == ITEM_SEG) {
                for (size_t k = 0; k < n_sent; k++) {
                    const struct item *x = &sent[k];
                    if (pick->has_gen && gen_id_eq(&x->gen, &pick->gen) &&
                        x->last > pick->uploaded)
                        pick->uploaded = x->last;
                    if (x->lsn_end > pick->lsn_uploaded)
                        pick->lsn_uploaded = x->lsn_end;
                    pick->staged_bytes -=
                        x->bytes < pick->staged_bytes ? x->bytes : pick->staged_bytes;
                }
                pick->n_batches++;
                pick->last_upload_ms = now_ms();
                pick->state_dirty = true;
            }
            if (pick->outage) {
                ended_outage = true;
                outage_ms = now_ms() - pick->outage_since_ms;
                outage_retries = pick->outage_retries;
            }
            pick->outage = false;
            pick->outage_retries = 0;
            pick->last_error[0] = 0;
            pick->backoff_ms = 0;
            pick->retry_at_ms = 0;
            pthread_cond_broadcast(&pick->cv);
        } else {
            pick->backoff_ms = pick->backoff_ms ? pick->backoff_ms * 2 : REPL_BACKOFF_MIN_MS;
            if (pick->backoff_ms > REPL_BACKOFF_MAX_MS)
                pick->backoff_ms = REPL_BACKOFF_MAX_MS;
            pick->retry_at_ms = now_ms() + pick->backoff_ms;
            if (!pick->outage) {
                started_outage = true;
                pick->outage_since_ms = now_ms();
                pick->outage_retries = 0;
                if (it.kind == ITEM_DEP || it.kind == ITEM_META || it.kind == ITEM_SEG)
                    gen_id_format(&it.gen, fail_gen);
                else if (pick->has_gen)
                    snprintf(fail_gen, sizeof(fail_gen), "%s", pick->gen_str);
            } else {
                pick->outage_retries++;
            }
            pick->outage = true;
            db_set_error(pick, &e);
        }
        pthread_mutex_unlock(&pick->mu);
        pthread_mutex_unlock(&r->mu);
        /* The watermark is durable before the staged file goes: a crash in between re-sends
         * the same key (same bytes), never a new range. */
        if (rc == 0 && it.kind == ITEM_SEG)
            db_persist(pick);
        /* in reverse: a merged batch's head (with the marker) last, see "merged uploads" */
        for (size_t k = n_sent; rc == 0 && k-- > 0;)
            item_done_cleanup(pick, &sent[k]);
        free(run);
        if (started_outage)
            LOG_WARN("upload: failing db=%s gen=%s err=%s http=%d, retrying with backoff",
                     pick->name, fail_gen, e.msg, e.http_status);
        if (ended_outage)
            LOG_INFO("upload: recovered db=%s outage=%" PRId64 ".%03ds retries=%u", pick->name,
                     outage_ms / 1000, (int)(outage_ms % 1000), outage_retries + 1);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- snapshot thread --------------------------------------------------------------------- */

/* Reads the running image of db into <gen>/db.<ext> (compressed). */
static int snap_build(struct repl_db *db, struct snapshot *s, const struct gen_id *g,
                      uint32_t *counter_out, struct err *err)
{
    char path[REPL_PATH_MAX], tmp[REPL_PATH_MAX], leaf[16];
    enum compression c = db->r->conf.compression;
    snprintf(leaf, sizeof(leaf), "db.%s", compression_ext(c));
    if (gen_path(db, g, leaf, path, sizeof(path)) != 0 ||
        (size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return ERR(err, ENAMETOOLONG, "snapshot: path too long");
    struct fd_sink sink = {.fd = -1};
    uint8_t *buf = malloc(REPL_SNAP_CHUNK);
    struct compressor *z = NULL;
    int rc = 0;
    *counter_out = 0;
    if (!buf) {
        rc = ERR(err, ENOMEM, "snapshot: out of memory");
        goto out;
    }
    sink.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (sink.fd < 0) {
        rc = ERR(err, errno, "snapshot: create %s: %s", tmp, errno_name(errno));
        goto out;
    }
    z = compressor_new(c, db->r->conf.compression_level, fd_sink_write, &sink, err);
    if (!z) {
        rc = err && err->code ? err->code : ENOMEM;
        goto out;
    }
    bool first = true;
    for (;;) {
        size_t n = 0;
        rc = snapshot_read(s, buf, REPL_SNAP_CHUNK, &n, err);
        if (rc || n == 0)
            break;
        if (first && n >= 28)
            *counter_out = be32_load(buf + 24);
        first = false;
        rc = compressor_write(z, buf, n, err);
        if (rc)
            break;
        pthread_mutex_lock(&db->r->mu);
        bool stop = db->r->stop;
        pthread_mutex_unlock(&db->r->mu);
        if (stop) {
            rc = ERR(err, ECANCELED, "snapshot: shutting down");
            break;
        }
    }
    if (rc == 0)
        rc = compressor_finish(z, err);
    if (rc == 0 && fsync(sink.fd) != 0)
        rc = ERR(err, errno, "snapshot: fsync %s: %s", tmp, errno_name(errno));
    if (rc == 0) {
        close(sink.fd);
        sink.fd = -1;
        uint8_t cc[LAYOUT_CHANGECOUNTER_BYTES];
        char ccp[REPL_PATH_MAX];
        layout_changecounter_encode(*counter_out, cc);
        if (gen_path(db, g, "changecounter", ccp, sizeof(ccp)) == 0)
            rc = write_small(ccp, cc, sizeof(cc), err);
        if (rc == 0 && rename(tmp, path) != 0)
            rc = ERR(err, errno, "snapshot: rename %s: %s", path, errno_name(errno));
        if (rc == 0)
            fileio_fsync_parent(path, NULL);
    }
out:
    compressor_free(z);
    if (sink.fd >= 0)
        close(sink.fd);
    if (rc)
        unlink(tmp);
    free(buf);
    return rc;
}

/* Uploads <gen>/db.<ext> (any compression found) then .changecounter. */
static int snap_upload(struct repl_db *db, const struct gen_id *g, struct err *err)
{
    static const enum compression order[] = {COMP_ZSTD, COMP_GZIP, COMP_RAW};
    char path[REPL_PATH_MAX], key[LAYOUT_KEY_MAX], leaf[16], ccp[REPL_PATH_MAX];
    int rc = 0;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        snprintf(leaf, sizeof(leaf), "db.%s", compression_ext(order[i]));
        if (gen_path(db, g, leaf, path, sizeof(path)) != 0)
            return ERR(err, ENAMETOOLONG, "snapshot: path too long");
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct stat sb;
        if (fstat(fd, &sb) != 0) {
            close(fd);
            return ERR(err, errno, "snapshot: stat %s: %s", path, errno_name(errno));
        }
        if ((rc = layout_key_snapshot(db->name, g, order[i], key)) != 0) {
            close(fd);
            return ERR(err, rc, "snapshot: key too long");
        }
        rc = s3_put_object_fd(db->r->s3, key, fd, (uint64_t)sb.st_size, err);
        close(fd);
        if (rc)
            return rc;
        uint8_t *cc = NULL;
        size_t cclen = 0;
        uint8_t zero[4] = {0, 0, 0, 0};
        gen_path(db, g, "changecounter", ccp, sizeof(ccp));
        if (fileio_read_file(ccp, 16, &cc, &cclen, NULL) != 0 ||
            cclen != LAYOUT_CHANGECOUNTER_BYTES) {
            free(cc);
            cc = NULL;
        }
        if ((rc = layout_key_changecounter(db->name, g, key)) == 0)
            rc = s3_put_object(db->r->s3, key, cc ? cc : zero, LAYOUT_CHANGECOUNTER_BYTES, err);
        free(cc);
        if (rc)
            return rc;
        unlink(path);
        unlink(ccp);
        char gdir[REPL_PATH_MAX];
        if (gen_path(db, g, NULL, gdir, sizeof(gdir)) == 0)
            rmdir(gdir); /* only when empty */
        return 0;
    }
    return 0; /* nothing to upload (retired) */
}

/* The oldest generation with a finished <gen>/db.<ext> in staging (false: none). Every such
 * file is uploaded under its own generation's key, whatever runs now. */
static bool snap_find_file(struct repl_db *db, struct gen_id *out)
{
    DIR *d = opendir(db->dir);
    bool found = false;
    if (!d)
        return false;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct gen_id g;
        if (strlen(de->d_name) != GEN_ID_STR_LEN ||
            gen_id_parse(de->d_name, GEN_ID_STR_LEN, &g, NULL) != 0)
            continue;
        if (found && gen_id_cmp(&g, out) <= 0)
            continue; /* not older than the one we have */
        char gdir[REPL_PATH_MAX];
        if (gen_path(db, &g, NULL, gdir, sizeof(gdir)) != 0)
            continue;
        DIR *gd = opendir(gdir);
        if (!gd)
            continue;
        struct dirent *ge;
        enum compression c;
        while ((ge = readdir(gd)) != NULL) {
            if (strncmp(ge->d_name, "db.", 3) == 0 && layout_snapshot_parse(ge->d_name, &c) == 0) {
                *out = g;
                found = true;
                break;
            }
        }
        closedir(gd);
    }
    closedir(d);
    return found;
}

static void *snapper_main(void *arg)
{
    struct replicator *r = arg;
    pthread_setname_np(pthread_self(), "bfs-snapshot");
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        struct repl_db *pick = NULL;
        bool build = false;
        int64_t now = now_ms(), next = now + REPL_IDLE_WAIT_MS;
        for (struct repl_db *db = r->dbs; db && !pick; db = db->next) {
            pthread_mutex_lock(&db->mu);
            if (db->snap_running) {
                pick = db;
                build = true;
            } else if (db->snap_upload && db->lease_idle) {
                if (lease_reclaim_locked(db))
                    pthread_cond_broadcast(&r->work_cv); /* the uploaders take the lease */
            } else if (db->snap_upload && !(db->q_head && db->q_head->kind == ITEM_VERIFY)) {
                /* Not before the bucket check (and lease) of the db: a snapshot key of ours
                 * in the bucket would look like a newer writer's generation. */
                if (db->retry_at_ms <= now)
                    pick = db;
                else if (db->retry_at_ms < next)
                    next = db->retry_at_ms;
            }
            pthread_mutex_unlock(&db->mu);
        }
        if (!pick) {
            struct timespec ts;
            deadline_ts(next, &ts);
            pthread_cond_timedwait(&r->snap_cv, &r->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&r->mu);
        struct err e = {0};
        struct gen_id g;
        if (build) {
            /* The image and its generation, read together (snap_mu -> mu): a snapshot
             * started meanwhile must never be written under the older generation's name. */
            pthread_mutex_lock(&pick->snap_mu);
            pthread_mutex_lock(&pick->mu);
            struct snapshot *s = pick->snap;
            g = pick->snap_gen;
            bool essential = pick->snap_essential;
            pthread_mutex_unlock(&pick->mu);
            pick->snap_building = s != NULL;
            pthread_mutex_unlock(&pick->snap_mu);
            uint32_t counter = 0;
            /* s stays valid: while snap_building, others only cancel and detach it. */
            int rc = s ? snap_build(pick, s, &g, &counter, &e) : ECANCELED;
            pthread_mutex_lock(&pick->snap_mu);
            bool mine = s != NULL && pick->snap == s;
            pick->snap_building = false;
            snapshot_free(s);
            if (mine)
                pick->snap = NULL;
            pthread_mutex_lock(&pick->mu);
            if (rc == 0) {
                pick->snap_upload = true; /* complete before any cancel: exact */
            }
            if (mine) {
                pick->snap_running = false;
                if (rc != 0 && rc != ECANCELED) {
                    /* The image of the generation's start is gone: the generation has no
                     * snapshot. Report a lag (chain_broken) until the next generation's
                     * snapshot is taken; an essential one leaves the chain without a base. */
                    pick->force_snapshot = true;
                    pick->chain_broken = true;
                    pick->need_base |= essential;
                    memset(&pick->snap_gen, 0, sizeof(pick->snap_gen));
                    db_set_error(pick, &e);
                }
            } else {
                rc = rc ? ECANCELED : 0; /* abandoned or retired: nothing to report */
            }
            pick->state_dirty = true;
            pthread_mutex_unlock(&pick->mu);
            pthread_mutex_unlock(&pick->snap_mu);
            if (rc && rc != ECANCELED) {
                char gs[GEN_ID_STR_LEN + 1];
                gen_id_format(&g, gs);
                LOG_ERR("snapshot: failed db=%s gen=%s err=%s (the next generation takes one)",
                        pick->name, gs, e.msg);
            }
        } else if (!snap_find_file(pick, &g)) {
            pthread_mutex_lock(&pick->mu);
            pick->snap_upload = false;
            pick->state_dirty = true;
            pthread_cond_broadcast(&pick->cv);
            pthread_mutex_unlock(&pick->mu);
        } else {
            int rc = snap_upload(pick, &g, &e);
            pthread_mutex_lock(&pick->mu);
            if (rc == 0) {
                pick->n_snapshots++;
                pick->state_dirty = true;
                pthread_cond_broadcast(&pick->cv);
            } else {
                pick->backoff_ms = pick->backoff_ms ? pick->backoff_ms * 2 : REPL_BACKOFF_MIN_MS;
                if (pick->backoff_ms > REPL_BACKOFF_MAX_MS)
                    pick->backoff_ms = REPL_BACKOFF_MAX_MS;
                pick->retry_at_ms = now_ms() + pick->backoff_ms;
                db_set_error(pick, &e);
            }
            pthread_mutex_unlock(&pick->mu);
            if (rc == 0) {
                char gs[GEN_ID_STR_LEN + 1];
                gen_id_format(&g, gs);
                LOG_INFO("snapshot: uploaded db=%s gen=%s", pick->name, gs);
            }
        }
        db_persist(pick);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- flush and status -------------------------------------------------------------------- */

/* mu held. A database renamed into its name whose file nothing has uploaded under it yet
 * (upload_verify begins its generation): the bucket still restores what it replaced. */
static bool rename_pending_locked(const struct repl_db *db)
{
    return db->renamed_in && !db->has_gen;
}

static bool db_drained(struct repl_db *db, uint64_t target)
{
    /* mu held */
    bool only_verify = db->q_head == NULL;
    return only_verify && db->lsn_uploaded >= target && !db->snap_running && !db->snap_upload &&
           !db->chain_broken && !(db->gen_open && db->committed > db->staged) &&
           !db->wchanged && !rename_pending_locked(db);
}

/* A pending object still in db's staging directory, whether queued or not: a segment,
 * .meta, .dep, finished snapshot or tombstone of any generation (mu NOT held: directory
 * reads). Its path relative to the staging dir goes to what. The queue alone is not proof:
 * a file that lost its queue entry would wait there for the next start. */
static bool db_staged_leftover(const struct repl_db *db, char *what, size_t cap)
{
    DIR *d = opendir(db->dir);
    bool found = false;
    if (!d)
        return false;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL) {
        struct gen_id g;
        if (strcmp(de->d_name, "tombstone") == 0) {
            snprintf(what, cap, "%s/tombstone", strrchr(db->dir, '/') + 1);
            found = true;
            break;
        }
        if (strlen(de->d_name) != GEN_ID_STR_LEN ||
            gen_id_parse(de->d_name, GEN_ID_STR_LEN, &g, NULL) != 0)
            continue;
        char gdir[REPL_PATH_MAX];
        if (gen_path(db, &g, NULL, gdir, sizeof(gdir)) != 0)
            continue;
        DIR *gd = opendir(gdir);
        if (!gd)
            continue;
        struct dirent *ge;
        while ((ge = readdir(gd)) != NULL) {
            const char *nm = ge->d_name;
            enum compression c;
            if (strcmp(nm, ".meta") == 0 || strcmp(nm, ".dep") == 0 ||
                name_has_suffix(nm, ".seg") || name_has_suffix(nm, ".wseg") ||
                (strncmp(nm, "db.", 3) == 0 && layout_snapshot_parse(nm, &c) == 0)) {
                snprintf(what, cap, "%s/%s/%s", strrchr(db->dir, '/') + 1, de->d_name, nm);
                found = true;
                break;
            }
        }
        closedir(gd);
    }
    closedir(d);
    return found;
}

int repl_flush(struct replicator *r, uint32_t timeout_ms, struct err *err)
{
    int64_t deadline = now_ms() + timeout_ms;
    pthread_mutex_lock(&r->mu);
    for (struct repl_db *db = r->dbs; db; db = db->next) {
        pthread_mutex_lock(&db->mu);
        db_hurry_locked(db, db->lsn_committed);
        pthread_mutex_unlock(&db->mu);
    }
    pthread_cond_broadcast(&r->stage_cv);
    pthread_cond_broadcast(&r->work_cv);
    pthread_mutex_unlock(&r->mu);
    char left[REPL_PATH_MAX];
    for (;;) {
        struct repl_db *stuck = NULL;
        left[0] = 0;
        pthread_mutex_lock(&r->mu);
        for (struct repl_db *db = r->dbs; db && !stuck; db = db->next) {
            pthread_mutex_lock(&db->mu);
            if (!db_drained(db, db->lsn_committed)) {
                stuck = db;
                db_hurry_locked(db, db->lsn_committed);
            }
            pthread_mutex_unlock(&db->mu);
        }
        /* Queues drained: every staged file of every generation must be gone too (a retired
         * db's directory belongs to a reopened db of the same name, or holds only its queued
         * tombstone, counted by its queue). */
        if (!stuck) {
            /* directory reads without r->mu (repl_db objects live until repl_free; new ones
             * are only linked in at the head) */
            struct repl_db *db = r->dbs;
            while (db && !stuck) {
                bool retired = db->retired;
                pthread_mutex_unlock(&r->mu);
                if (!retired && db_staged_leftover(db, left, sizeof(left)))
                    stuck = db;
                pthread_mutex_lock(&r->mu);
                db = db->next;
            }
        }
        if (stuck) {
            pthread_cond_broadcast(&r->stage_cv);
            pthread_cond_broadcast(&r->work_cv);
        }
        pthread_mutex_unlock(&r->mu);
        if (!stuck)
            return 0;
        if (now_ms() >= deadline) {
            pthread_mutex_lock(&stuck->mu);
            const struct item *h = stuck->q_head;
            char hs[GEN_ID_STR_LEN + 1] = "none";
            if (h && h->kind != ITEM_VERIFY && h->kind != ITEM_TOMBSTONE)
                gen_id_format(&h->gen, hs);
            static const char *const kinds[] = {"bucket-check", "tombstone", ".dep",
                                                ".meta",        "batch",     "lease"};
            char next[160] = "none";
            if (h && h->kind == ITEM_SEG)
                snprintf(next, sizeof(next), "batch %" PRIu32 "-%" PRIu32 " gen=%s", h->first,
                         h->last, hs);
            else if (h)
                snprintf(next, sizeof(next), "%s gen=%s", kinds[h->kind], hs);
            int rc = ERR(err, ETIMEDOUT,
                         "flush: not everything reached S3 within %" PRIu32
                         " ms db=%s gen=%s committed=%" PRIu32 " uploaded=%" PRIu32
                         " staged_bytes=%" PRIu64 " next=%s%s%s%s%s last_error=%s (kept in "
                         "staging for the next start)",
                         timeout_ms, stuck->name, stuck->has_gen ? stuck->gen_str : "none",
                         stuck->committed, stuck->uploaded, stuck->staged_bytes, next,
                         stuck->snap_running || stuck->snap_upload ? " snapshot=pending" : "",
                         stuck->gen_open && stuck->committed > stuck->staged ? " unstaged=yes"
                                                                             : "",
                         left[0] ? " staged_file=" : "", left,
                         stuck->last_error[0] ? stuck->last_error : "none");
            pthread_mutex_unlock(&stuck->mu);
            return rc;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL); /* polling with a deadline: flush is not a hot path */
    }
}

int repl_db_status(struct repl_db *db, struct repl_db_status *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&db->mu);
    snprintf(out->db_name, sizeof(out->db_name), "%s", db->name);
    if (db->has_gen)
        snprintf(out->generation, sizeof(out->generation), "%s", db->gen_str);
    out->journal_mode = !db->journal_known ? "unknown" : db->journal_wal ? "wal" : "delete";
    out->is_protected = !db->journal_known || db->journal_wal;
    out->last_committed_frame = db->committed;
    out->last_uploaded_frame = db->uploaded;
    out->last_commit_ms = db->last_commit_ms;
    out->last_upload_ms = db->last_upload_ms;
    int64_t oldest = 0;
    for (struct item *it = db->q_head; it; it = it->next)
        if (it->kind == ITEM_SEG && it->commit_ms > 0 && (oldest == 0 || it->commit_ms < oldest))
            oldest = it->commit_ms;
    if (db->gen_open && db->committed > db->staged && db->pending_since_ms > 0 &&
        (oldest == 0 || db->pending_since_ms < oldest))
        oldest = db->pending_since_ms;
    bool pending = oldest > 0 || (db->gen_open && db->committed > db->staged) ||
                   db->lsn_uploaded < db->lsn_committed || db->chain_broken || db->unsynced;
    if (pending) {
        int64_t base = oldest ? oldest : db->last_commit_ms;
        int64_t lag = now_ms() - base;
        out->lag_s = lag > 0 ? (double)lag / 1000.0 : 0.001;
    }
    out->staged_bytes = db->staged_bytes;
    out->n_generations = db->n_generations;
    out->n_snapshots = db->n_snapshots;
    out->n_batches = db->n_batches;
    out->n_wals_taken = db->n_wals_taken;
    out->snapshot_pending =
        db->snap_running || db->snap_upload || db->wchanged || rename_pending_locked(db);
    out->s3_outage = db->outage;
    out->lease_blocked = db->lease_blocked;
    snprintf(out->lease_holder, sizeof(out->lease_holder), "%s", db->lease_holder);
    snprintf(out->last_error, sizeof(out->last_error), "%s",
             db->last_error[0] || !db->unsynced ? db->last_error : REPL_UNSYNCED_MSG);
    pthread_mutex_unlock(&db->mu);
    return 0;
}

void repl_status_each(struct replicator *r, repl_status_fn *fn, void *arg)
{
    pthread_mutex_lock(&r->mu);
    for (struct repl_db *db = r->dbs; db; db = db->next) {
        if (db->retired)
            continue;
        struct repl_db_status *st = malloc(sizeof(*st));
        if (!st)
            break;
        repl_db_status(db, st);
        fn(arg, st);
        free(st);
    }
    pthread_mutex_unlock(&r->mu);
}

static int json_str(struct buf *b, const char *s)
{
    int rc = buf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; rc == 0 && *p; p++) {
        if (*p == '"' || *p == '\\')
            rc = buf_appendf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            rc = buf_appendf(b, "\\u%04x", *p);
        else
            rc = buf_append(b, p, 1);
    }
    return rc ? rc : buf_append(b, "\"", 1);
}

struct json_ctx {
    struct buf *b;
    int rc;
    bool first;
};

static void json_one(void *arg, const struct repl_db_status *s)
{
    struct json_ctx *c = arg;
    struct buf *b = c->b;
    if (c->rc)
        return;
    int rc = buf_appendf(b, "%s\n  {\"db_name\": ", c->first ? "" : ",");
    c->first = false;
    if (!rc)
        rc = json_str(b, s->db_name);
    if (!rc)
        rc = buf_appendf(b, ", \"generation\": ");
    if (!rc)
        rc = json_str(b, s->generation);
    if (!rc)
        rc = buf_appendf(
            b,
            ", \"journal_mode\": \"%s\", \"protected\": %s, "
            "\"last_committed_frame\": %" PRIu32 ", \"last_uploaded_frame\": %" PRIu32
            ", \"last_commit_ms\": %" PRId64 ", \"last_upload_ms\": %" PRId64
            ", \"lag_seconds\": %.3f, \"staged_bytes\": %" PRIu64 ", \"generations\": %" PRIu64
            ", \"snapshots\": %" PRIu64 ", \"batches\": %" PRIu64 ", \"wals_taken\": %" PRIu64
            ", \"snapshot_pending\": %s, \"s3_outage\": %s, \"last_error\": ",
            s->journal_mode, s->is_protected ? "true" : "false", s->last_committed_frame,
            s->last_uploaded_frame, s->last_commit_ms, s->last_upload_ms, s->lag_s, s->staged_bytes,
            s->n_generations, s->n_snapshots, s->n_batches, s->n_wals_taken,
            s->snapshot_pending ? "true" : "false", s->s3_outage ? "true" : "false");
    if (!rc)
        rc = json_str(b, s->last_error);
    if (!rc)
        rc = buf_append(b, "}", 1);
    c->rc = rc;
}

int repl_status_json(struct replicator *r, struct buf *out)
{
    struct json_ctx c = {.b = out, .rc = 0, .first = true};
    int rc = buf_appendf(out, "{\"databases\": [");
    if (rc)
        return rc;
    repl_status_each(r, json_one, &c);
    if (c.rc)
        return c.rc;
    return buf_appendf(out, "%s]}\n", c.first ? "" : "\n");
}
