/* tests/fuzz/standalone.c - main() for a fuzz target built without libFuzzer: runs every file
 * named on the command line (a directory: each regular file in it, sorted) through
 * LLVMFuzzerTestOneInput once. Prints "<n> inputs ok" at the end; a crash or sanitizer report
 * is the failure. Exit 2 for an unreadable argument. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_INPUT (64u << 20)

static int run_file(const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;
    struct err e = {0};
    if (fileio_read_file(path, FUZZ_MAX_INPUT, &data, &len, &e) != 0) {
        fprintf(stderr, "fuzz: %s\n", e.msg);
        return 2;
    }
    LLVMFuzzerTestOneInput(data ? data : (const uint8_t *)"", len);
    free(data);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "fuzz: cannot open %s\n", dir);
        return 2;
    }
    char **names = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof(*p));
            if (!p) {
                rc = 2;
                break;
            }
            names = p;
        }
        names[cnt] = strdup(de->d_name);
        if (!names[cnt]) {
            rc = 2;
            break;
        }
        cnt++;
    }
    closedir(d);
    if (cnt > 1)
        qsort(names, cnt, sizeof(*names), cmp_str);
    for (size_t i = 0; i < cnt; i++) {
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (rc == 0 && stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
            rc = run_file(path);
            (*n)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    size_t n = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        int rc;
        if (stat(argv[i], &sb) != 0) {
            fprintf(stderr, "fuzz: cannot stat %s\n", argv[i]);
            return 2;
        }
        if (S_ISDIR(sb.st_mode)) {
            rc = run_dir(argv[i], &n);
        } else {
            rc = run_file(argv[i]);
            n++;
        }
        if (rc)
            return rc;
    }
    printf("%zu inputs ok\n", n);
    return 0;
}
