/* cli/main.c - bottomless-cli entry point (placeholder until the CLI lands). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: bottomless-cli [-e ENDPOINT] [-b BUCKET] [-d DATABASE] COMMAND\n");
        return 0;
    }
    fprintf(stderr, "bottomless-cli: not implemented yet\n");
    return 1;
}
