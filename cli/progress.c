/* cli/progress.c - a one-line progress bar on stderr: bytes, rate, ETA. Drawn at most
 * ten times a second, and only when enabled (the caller enables it when stderr is a tty). */
#include "cli/cli.h"

#include <time.h>

#define PROGRESS_REDRAW_S 0.1
#define PROGRESS_BAR_WIDTH 24

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fmt_eta(double secs, char *buf, size_t len)
{
    long s = (long)(secs + 0.5);

    if (s >= 3600)
        snprintf(buf, len, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else
        snprintf(buf, len, "%ldm%02lds", s / 60, s % 60);
}

static void draw(struct progress *p, bool final)
{
    char done[32], total[32], rate[32], eta[32] = "--";
    char bar[PROGRESS_BAR_WIDTH + 1];
    double elapsed = now_s() - p->start_s;
    double bps = elapsed > 0 ? (double)p->done / elapsed : 0;
    int filled = 0;

    cli_fmt_bytes(p->done, done, sizeof(done));
    cli_fmt_bytes((uint64_t)bps, rate, sizeof(rate));
    if (p->total > 0) {
        uint64_t d = p->done < p->total ? p->done : p->total;

        filled = (int)((double)d * PROGRESS_BAR_WIDTH / (double)p->total);
        cli_fmt_bytes(p->total, total, sizeof(total));
        if (bps > 0 && !final)
            fmt_eta((double)(p->total - d) / bps, eta, sizeof(eta));
        else if (final)
            fmt_eta(elapsed, eta, sizeof(eta));
    } else {
        snprintf(total, sizeof(total), "?");
    }
    for (int i = 0; i < PROGRESS_BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '-';
    bar[PROGRESS_BAR_WIDTH] = '\0';
    fprintf(stderr, "\r%s [%s] %s / %s  %s/s  %s %s\033[K", p->label, bar, done, total, rate,
            final ? "in" : "ETA", eta);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
    p->last_draw_s = now_s();
}

void progress_init(struct progress *p, bool enabled, const char *label, uint64_t total)
{
    p->enabled = enabled;
    p->total = total;
    p->done = 0;
    p->label = label;
    p->start_s = now_s();
    p->last_draw_s = 0;
}

void progress_set(struct progress *p, uint64_t done, uint64_t total)
{
    if (!p->enabled)
        return;
    p->done = done;
    if (total > 0)
        p->total = total;
    if (now_s() - p->last_draw_s >= PROGRESS_REDRAW_S)
        draw(p, false);
}

void progress_finish(struct progress *p)
{
    if (!p->enabled)
        return;
    draw(p, true);
    p->enabled = false;
}
