/* fs/main.c - the bottomlessfs daemon entry point (placeholder until the filesystem lands). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: bottomlessfs [-f] [-d] [-o OPTS] BACKING_DIR MOUNTPOINT\n");
        return 0;
    }
    fprintf(stderr, "bottomlessfs: not implemented yet\n");
    return 1;
}
