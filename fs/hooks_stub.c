/* fs/hooks_stub.c - weak default of replica_hooks_init (fs/hooks.h): an all-NULL hook table, so
 * the daemon links and runs as a pure passthrough until fs/replica.c provides the real one. */
#include "fs/hooks.h"

#include <string.h>

__attribute__((weak)) int replica_hooks_init(const struct fs_config *cfg, struct fs_hooks *out,
                                             struct err *err)
{
    (void)cfg;
    (void)err;
    memset(out, 0, sizeof(*out));
    return 0;
}
