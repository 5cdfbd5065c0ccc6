/* bench/fuse_rtt.c - the FUSE round trip of SQLite-like WAL writes, by transport (issue 6).
 *
 *   fuse_rtt native FILE N            N pairs of pwrite(24 B) + pwrite(4096 B) into FILE, the
 *                                     way SQLite appends a WAL frame (header, then page)
 *   fuse_rtt MODE MNT N [BACKING]     mounts a one-file FUSE file system (MNT/f) served by this
 *                                     process, and a child process writes the same N pairs
 *                                     into MNT/f. The server answers every WRITE at once, or
 *                                     after a pwrite into BACKING if given. MODE:
 *        classic   one thread reading /dev/fuse (what bottomlessfs's session loop does)
 *        pinned    one thread per CPU, each pinned to its CPU, all reading /dev/fuse
 *        uring     FUSE over io_uring: one queue per CPU, each served by a thread pinned to
 *                  that CPU (kernel >= 6.14 with CONFIG_FUSE_IO_URING, and
 *                  /sys/module/fuse/parameters/enable_uring set to Y)
 * Prints one JSON object: {"mode":..., "pairs":N, "secs":S, "us_per_pair":U, "writes":W}.
 * Needs root (mount(2)). The child reads the first 5 MiB of MNT/f before it writes, so the
 * written pages are cached and up to date and each write is one WRITE request, as with a -wal
 * under bottomlessfs (fs/ops_file.c, "grown ahead").
 * A measurement of transports for the daemon's design, not of bottomlessfs itself: only libc
 * and the kernel's FUSE protocol. bench/rtt.sh runs it in interleaved rounds. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* FUSE-over-io_uring UAPI (protocol 7.42, kernel 6.14; Debian 12's <linux/fuse.h> is 7.38) */
#define RTT_FUSE_OVER_IO_URING_FLAGS2 (1u << 9) /* FUSE_OVER_IO_URING (1ULL << 41) in flags2 */
#define RTT_URING_HDR_SZ 128
#define RTT_URING_CMD_REGISTER 1
#define RTT_URING_CMD_COMMIT_AND_FETCH 2
struct rtt_uring_ent_in_out {
    uint64_t flags, commit_id;
    uint32_t payload_sz, padding;
    uint64_t reserved;
};
struct rtt_uring_req_header {
    char in_out[RTT_URING_HDR_SZ]; /* fuse_in_header on fetch, fuse_out_header on commit */
    char op_in[RTT_URING_HDR_SZ];  /* the opcode's fixed argument (e.g. fuse_write_in) */
    struct rtt_uring_ent_in_out ent;
};
struct rtt_uring_cmd_req { /* in the SQE's 80-byte command area */
    uint64_t flags, commit_id;
    uint16_t qid;
    uint8_t padding[6];
};

#define RTT_MAX_WRITE (128u * 1024u)
#define RTT_BUF (RTT_MAX_WRITE + 4096u)
#define RTT_PREREAD (5u << 20)
#define RTT_WRAP (4u << 20) /* the pairs cycle through the first 4 MiB, like a WAL */
#define RTT_ENTS 2          /* ring entries per queue */
#define RTT_MAX_CPUS 256

enum rtt_mode { RTT_CLASSIC, RTT_PINNED, RTT_URING };

struct server {
    int fuse_fd;
    int backing_fd; /* -1: WRITEs are answered without I/O */
    enum rtt_mode mode;
    long writes; /* WRITE requests served (atomic) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool init_done; /* mu: INIT answered */
    int queues_up;  /* mu: io_uring queues registered (or failed) */
    int queue_err;  /* mu: first errno of a queue that failed */
};

struct thread_arg {
    struct server *s;
    int cpu; /* -1: not pinned */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pin_to(int cpu)
{
    cpu_set_t cs;
    CPU_ZERO(&cs);
    CPU_SET(cpu, &cs);
    pthread_setaffinity_np(pthread_self(), sizeof(cs), &cs);
}

static void attr_fill(struct fuse_attr *a, uint64_t ino)
{
    memset(a, 0, sizeof(*a));
    a->ino = ino;
    a->mode = ino == FUSE_ROOT_ID ? (S_IFDIR | 0755) : (S_IFREG | 0644);
    a->nlink = ino == FUSE_ROOT_ID ? 2 : 1;
    a->size = ino == FUSE_ROOT_ID ? 0 : 1u << 30;
    a->blksize = 4096;
}

/* Serves one request other than INIT: writes the reply's argument into out and returns its
 * size, or a negative errno; 1 with *no_reply set for requests that get none (FORGET). */
static int serve(struct server *s, const struct fuse_in_header *ih, const void *op_in,
                 const void *payload, void *out, bool *no_reply)
{
    *no_reply = false;
    switch (ih->opcode) {
    case FUSE_LOOKUP: {
        if (ih->nodeid != FUSE_ROOT_ID || strcmp(payload, "f") != 0)
            return -ENOENT;
        struct fuse_entry_out *e = out;
        memset(e, 0, sizeof(*e));
        e->nodeid = 2;
        e->entry_valid = e->attr_valid = 3600;
        attr_fill(&e->attr, 2);
        return (int)sizeof(*e);
    }
    case FUSE_GETATTR: {
        struct fuse_attr_out *a = out;
        memset(a, 0, sizeof(*a));
        a->attr_valid = 3600;
        attr_fill(&a->attr, ih->nodeid);
        return (int)sizeof(*a);
    }
    case FUSE_OPEN:
    case FUSE_OPENDIR: {
        struct fuse_open_out *o = out;
        memset(o, 0, sizeof(*o));
        o->fh = 1;
        o->open_flags = FOPEN_KEEP_CACHE;
        return (int)sizeof(*o);
    }
    case FUSE_READ: { /* the file reads as zeros */
        const struct fuse_read_in *r = op_in;
        uint32_t n = r->size > RTT_MAX_WRITE ? RTT_MAX_WRITE : r->size;
        memset(out, 0, n);
        return (int)n;
    }
    case FUSE_WRITE: {
        const struct fuse_write_in *w = op_in;
        if (s->backing_fd >= 0 && pwrite(s->backing_fd, payload, w->size, (off_t)w->offset) < 0)
            return -errno;
        __atomic_add_fetch(&s->writes, 1, __ATOMIC_RELAXED);
        struct fuse_write_out *wo = out;
        memset(wo, 0, sizeof(*wo));
        wo->size = w->size;
        return (int)sizeof(*wo);
    }
    case FUSE_FLUSH:
    case FUSE_RELEASE:
    case FUSE_RELEASEDIR:
    case FUSE_FSYNC:
        return 0;
    case FUSE_FORGET:
    case FUSE_BATCH_FORGET:
        *no_reply = true;
        return 0;
    default: /* GETXATTR among others: ENOSYS makes the kernel stop asking */
        return -ENOSYS;
    }
}

/* The reply header for serve()'s result r (argument size, or -errno). */
static struct fuse_out_header reply_header(int r, uint64_t unique)
{
    struct fuse_out_header oh = {(uint32_t)(sizeof(oh) + (size_t)(r > 0 ? r : 0)), r < 0 ? r : 0,
                                 unique};
    return oh;
}

static void init_reply(struct server *s, const struct fuse_in_header *ih,
                       const struct fuse_init_in *in)
{
    struct fuse_init_out o;
    memset(&o, 0, sizeof(o));
    o.major = FUSE_KERNEL_VERSION;
    o.minor = in->minor < FUSE_KERNEL_MINOR_VERSION ? in->minor : FUSE_KERNEL_MINOR_VERSION;
    if (s->mode == RTT_URING)
        o.minor = in->minor; /* io_uring is negotiated from 7.42: answer the kernel's own */
    o.max_readahead = in->max_readahead;
    o.flags = FUSE_BIG_WRITES | FUSE_MAX_PAGES | FUSE_INIT_EXT;
    o.flags2 = s->mode == RTT_URING ? RTT_FUSE_OVER_IO_URING_FLAGS2 : 0;
    o.max_background = 12;
    o.congestion_threshold = 9;
    o.max_write = RTT_MAX_WRITE;
    o.max_pages = RTT_MAX_WRITE / 4096;
    struct fuse_out_header oh = {sizeof(oh) + sizeof(o), 0, ih->unique};
    struct iovec v[2] = {{&oh, sizeof(oh)}, {&o, sizeof(o)}};
    if (writev(s->fuse_fd, v, 2) < 0)
        fprintf(stderr, "fuse_rtt: INIT reply: %s\n", strerror(errno));
    pthread_mutex_lock(&s->mu);
    s->init_done = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* A reader of /dev/fuse: every request in classic and pinned mode; INIT (and what the kernel
 * still sends there, FORGETs) in uring mode. */
static void *dev_reader(void *arg)
{
    struct thread_arg *ta = arg;
    struct server *s = ta->s;
    char *in = malloc(RTT_BUF), *out = malloc(RTT_BUF);
    if (ta->cpu >= 0)
        pin_to(ta->cpu);
    while (in != NULL && out != NULL) {
        ssize_t n = read(s->fuse_fd, in, RTT_BUF);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == ENOENT))
            continue;
        if (n < (ssize_t)sizeof(struct fuse_in_header))
            break; /* ENODEV: unmounted */
        const struct fuse_in_header *ih = (const void *)in;
        const char *op_in = in + sizeof(*ih);
        if (ih->opcode == FUSE_INIT) {
            init_reply(s, ih, (const void *)op_in);
            continue;
        }
        const char *payload = op_in;
        if (ih->opcode == FUSE_WRITE)
            payload += sizeof(struct fuse_write_in);
        bool no_reply;
        int r = serve(s, ih, op_in, payload, out, &no_reply);
        if (no_reply)
            continue;
        struct fuse_out_header oh = reply_header(r, ih->unique);
        struct iovec v[2] = {{&oh, sizeof(oh)}, {out, r > 0 ? (size_t)r : 0}};
        if (writev(s->fuse_fd, v, 2) < 0 && errno != ENOENT)
            fprintf(stderr, "fuse_rtt: reply: %s\n", strerror(errno));
    }
    free(in);
    free(out);
    return NULL;
}

/* ---- io_uring, raw system calls (liburing is not a dependency) ---- */
struct ring {
    int fd;
    unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
    unsigned char *sqes; /* 128-byte SQEs */
    struct io_uring_cqe *cqes;
};

static int ring_init(struct ring *r, unsigned entries)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    /* SQE128: FUSE's commands need the 80-byte area. DEFER_TASKRUN: completions are run
     * when the queue thread asks for them, not by interrupting it (measured: 42 against 65 us
     * per pair without it) */
    p.flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    r->fd = (int)syscall(__NR_io_uring_setup, entries, &p);
    if (r->fd < 0)
        return errno;
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    unsigned char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                             IORING_OFF_SQ_RING);
    unsigned char *cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                             IORING_OFF_CQ_RING);
    r->sqes = mmap(NULL, (size_t)p.sq_entries * 128, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || r->sqes == MAP_FAILED)
        return ENOMEM;
    r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(sq + p.sq_off.array);
    r->cq_head = (unsigned *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    return 0;
}

/* Queues a FUSE command SQE for entry i (iov: REGISTER's buffers; NULL for a commit). */
static void ring_fuse_cmd(struct ring *r, int fuse_fd, uint32_t cmd, int qid, uint64_t commit_id,
                          struct iovec *iov, uint64_t i)
{
    unsigned tail = *r->sq_tail, idx = tail & *r->sq_mask;
    struct io_uring_sqe *sqe = (struct io_uring_sqe *)(r->sqes + (size_t)idx * 128);
    memset(sqe, 0, 128);
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = fuse_fd;
    sqe->cmd_op = cmd;
    sqe->user_data = i;
    if (iov != NULL) {
        sqe->addr = (uint64_t)(uintptr_t)iov;
        sqe->len = 2;
    }
    struct rtt_uring_cmd_req req;
    memset(&req, 0, sizeof(req));
    req.qid = (uint16_t)qid;
    req.commit_id = commit_id;
    memcpy(sqe->cmd, &req, sizeof(req));
    r->sq_array[idx] = idx;
    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
}

struct ring_ent {
    struct rtt_uring_req_header hdr;
    struct iovec iov[2];
    char payload[RTT_BUF];
};

static void queue_up(struct server *s, int err)
{
    pthread_mutex_lock(&s->mu);
    s->queues_up++;
    if (err != 0 && s->queue_err == 0)
        s->queue_err = err;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* The io_uring queue of CPU ta->cpu: registers RTT_ENTS entries, then answers what they bring
 * and fetches the next with one command each. */
static void *uring_queue(void *arg)
{
    struct thread_arg *ta = arg;
    struct server *s = ta->s;
    struct ring r;
    char *out = malloc(RTT_BUF);
    struct ring_ent *e = calloc(RTT_ENTS, sizeof(*e));
    pin_to(ta->cpu);
    int err = out == NULL || e == NULL ? ENOMEM : ring_init(&r, 8);
    for (int i = 0; err == 0 && i < RTT_ENTS; i++) {
        e[i].iov[0] = (struct iovec){&e[i].hdr, sizeof(e[i].hdr)};
        e[i].iov[1] = (struct iovec){e[i].payload, sizeof(e[i].payload)};
        ring_fuse_cmd(&r, s->fuse_fd, RTT_URING_CMD_REGISTER, ta->cpu, 0, e[i].iov, (uint64_t)i);
    }
    /* REGISTER runs as it is submitted: the queue is up once this returns */
    if (err == 0 && syscall(__NR_io_uring_enter, r.fd, RTT_ENTS, 0, 0, NULL, 0) < 0)
        err = errno;
    queue_up(s, err);
    unsigned submit = 0;
    while (err == 0) {
        if (syscall(__NR_io_uring_enter, r.fd, submit, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0 &&
            errno != EINTR)
            break;
        submit = 0;
        unsigned head = *r.cq_head;
        while (head != __atomic_load_n(r.cq_tail, __ATOMIC_ACQUIRE)) {
            struct io_uring_cqe *c = &r.cqes[head & *r.cq_mask];
            head++;
            if (c->res < 0) { /* ENOTCONN, ENODEV: unmounted */
                if (c->res != -ENOTCONN && c->res != -ENODEV)
                    fprintf(stderr, "fuse_rtt: queue %d: %s\n", ta->cpu, strerror(-c->res));
                err = -c->res;
                break;
            }
            struct ring_ent *x = &e[c->user_data];
            struct fuse_in_header ih;
            memcpy(&ih, x->hdr.in_out, sizeof(ih));
            bool no_reply;
            int res = serve(s, &ih, x->hdr.op_in, x->payload, out, &no_reply);
            struct fuse_out_header oh = reply_header(res, ih.unique);
            memcpy(x->hdr.in_out, &oh, sizeof(oh));
            if (res > 0)
                memcpy(x->payload, out, (size_t)res);
            x->hdr.ent.payload_sz = res > 0 ? (uint32_t)res : 0;
            ring_fuse_cmd(&r, s->fuse_fd, RTT_URING_CMD_COMMIT_AND_FETCH, ta->cpu,
                          x->hdr.ent.commit_id, NULL, c->user_data);
            submit++;
        }
        __atomic_store_n(r.cq_head, head, __ATOMIC_RELEASE);
    }
    return NULL;
}

/* The app: N frame-like pairs of writes into fd; returns seconds, or -1. */
static double write_pairs(int fd, long n)
{
    static char page[4096], hdr[24];
    off_t off = 32; /* after the WAL header */
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        if (pwrite(fd, hdr, sizeof(hdr), off) != (ssize_t)sizeof(hdr) ||
            pwrite(fd, page, sizeof(page), off + (off_t)sizeof(hdr)) != (ssize_t)sizeof(page))
            return -1;
        off += (off_t)(sizeof(hdr) + sizeof(page));
        if (off > (off_t)RTT_WRAP)
            off = 32;
    }
    return now_s() - t0;
}

static void print_result(const char *mode, long n, double secs, long writes)
{
    printf("{\"mode\":\"%s\",\"pairs\":%ld,\"secs\":%.4f,\"us_per_pair\":%.2f,\"writes\":%ld}\n",
           mode, n, secs, secs / (double)n * 1e6, writes);
}

static int usage(void)
{
    fprintf(stderr, "usage: fuse_rtt native FILE N\n"
                    "       fuse_rtt classic|pinned|uring MNT N [BACKING]  (root)\n");
    return 2;
}

static int uring_enabled(void)
{
    char c = 'N';
    FILE *f = fopen("/sys/module/fuse/parameters/enable_uring", "r");
    if (f != NULL) {
        if (fread(&c, 1, 1, f) != 1)
            c = 'N';
        fclose(f);
    }
    return c == 'Y' || c == '1';
}

int main(int argc, char **argv)
{
    if (argc < 4 || atol(argv[3]) <= 0)
        return usage();
    const char *mode = argv[2], *target = argv[1];
    long n = atol(argv[3]);

    if (strcmp(mode, "native") == 0) {
        int fd = open(target, O_RDWR | O_CREAT, 0644);
        if (fd < 0) {
            fprintf(stderr, "fuse_rtt: %s: %s\n", target, strerror(errno));
            return 1;
        }
        double secs = write_pairs(fd, n);
        close(fd);
        if (secs < 0)
            return 1;
        print_result(mode, n, secs, 2 * n);
        return 0;
    }

    struct server s;
    memset(&s, 0, sizeof(s));
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    s.backing_fd = -1;
    if (strcmp(mode, "classic") == 0)
        s.mode = RTT_CLASSIC;
    else if (strcmp(mode, "pinned") == 0)
        s.mode = RTT_PINNED;
    else if (strcmp(mode, "uring") == 0)
        s.mode = RTT_URING;
    else
        return usage();
    if (s.mode == RTT_URING && !uring_enabled()) {
        fprintf(stderr, "fuse_rtt: FUSE over io_uring is off: echo Y > "
                        "/sys/module/fuse/parameters/enable_uring (kernel >= 6.14)\n");
        return 3;
    }
    if (argc > 4 && (s.backing_fd = open(argv[4], O_RDWR | O_CREAT | O_TRUNC, 0644)) < 0) {
        fprintf(stderr, "fuse_rtt: %s: %s\n", argv[4], strerror(errno));
        return 1;
    }
    int ncpu = (int)sysconf(_SC_NPROCESSORS_CONF);
    if (ncpu < 1 || ncpu > RTT_MAX_CPUS)
        ncpu = 1;
    s.fuse_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
    if (s.fuse_fd < 0) {
        fprintf(stderr, "fuse_rtt: /dev/fuse: %s\n", strerror(errno));
        return 1;
    }
    char opts[128];
    snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0", s.fuse_fd);
    if (mount("fuse_rtt", target, "fuse.fuse_rtt", MS_NOSUID | MS_NODEV, opts) != 0) {
        fprintf(stderr, "fuse_rtt: mount %s: %s (run as root)\n", target, strerror(errno));
        return 1;
    }

    static struct thread_arg reader_args[RTT_MAX_CPUS], queue_args[RTT_MAX_CPUS];
    pthread_t t;
    int readers = s.mode == RTT_PINNED ? ncpu : 1;
    for (int i = 0; i < readers; i++) {
        reader_args[i] = (struct thread_arg){&s, s.mode == RTT_PINNED ? i : -1};
        pthread_create(&t, NULL, dev_reader, &reader_args[i]);
    }
    int rc = 0;
    if (s.mode == RTT_URING) { /* queues are registered once INIT (sent at mount) said so */
        pthread_mutex_lock(&s.mu);
        while (!s.init_done)
            pthread_cond_wait(&s.cv, &s.mu);
        pthread_mutex_unlock(&s.mu);
        for (int q = 0; q < ncpu; q++) {
            queue_args[q] = (struct thread_arg){&s, q};
            pthread_create(&t, NULL, uring_queue, &queue_args[q]);
        }
        pthread_mutex_lock(&s.mu);
        while (s.queues_up < ncpu)
            pthread_cond_wait(&s.cv, &s.mu);
        rc = s.queue_err;
        pthread_mutex_unlock(&s.mu);
        if (rc != 0)
            fprintf(stderr, "fuse_rtt: io_uring queue: %s\n", strerror(rc));
    }

    char path[4096];
    snprintf(path, sizeof(path), "%s/f", target);
    int fds[2];
    if (rc == 0 && pipe(fds) != 0)
        rc = errno;
    pid_t app = rc == 0 ? fork() : -1;
    if (app == 0) { /* the app: a separate process, as SQLite's would be */
        static char rb[1 << 16];
        int fd = open(path, O_RDWR);
        for (off_t o = 0; fd >= 0 && o < (off_t)RTT_PREREAD; o += (off_t)sizeof(rb))
            if (pread(fd, rb, sizeof(rb), o) < 0)
                _exit(1);
        double secs = fd >= 0 ? write_pairs(fd, n) : -1;
        _exit(secs >= 0 && write(fds[1], &secs, sizeof(secs)) == (ssize_t)sizeof(secs) ? 0 : 1);
    }
    double secs = -1;
    int ws = 0;
    if (app > 0) {
        close(fds[1]);
        if (read(fds[0], &secs, sizeof(secs)) != (ssize_t)sizeof(secs))
            secs = -1;
        waitpid(app, &ws, 0);
    }
    long served = __atomic_load_n(&s.writes, __ATOMIC_RELAXED);
    umount2(target, MNT_DETACH); /* the serving threads end with the connection */
    if (secs < 0) {
        fprintf(stderr, "fuse_rtt: the writes through %s failed\n", target);
        return 1;
    }
    print_result(mode, n, secs, served);
    return 0;
}
