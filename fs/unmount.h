/* fs/unmount.h - `bottomlessfs -u MOUNTPOINT`: unmount, then wait for the final uploads.
 * Why:     fusermount3 -u returns as soon as the kernel has detached the mount; the daemon
 *          learns of it only when its session ends, and uploads what is left afterwards (up to
 *          flush_timeout). A script that unmounts and then restores elsewhere, or shuts the
 *          machine down, needs to know when that is done and whether it all reached S3.
 * How:     finds the mount in /proc/self/mountinfo (its source, "bottomlessfs:BACKING_DIR",
 *          names the backing directory), reads the daemon's pid from the staging area's lock
 *          note (fs/stagelock.h), runs fusermount3 -u, then waits until the daemon lets go of
 *          the lock and reads the state it left: exited (everything committed is in S3) or
 *          exited-unflushed (some of it stays staged for the next mount).
 * Output:  one line on stdout on success; errors on stderr naming the cause and the fix.
 * Returns: the process exit status: 0 unmounted and flushed, 1 otherwise. */
#ifndef BFS_FS_UNMOUNT_H
#define BFS_FS_UNMOUNT_H

/* argv: "bottomlessfs", "-u", MOUNTPOINT. */
int fs_unmount_main(int argc, char **argv);

#endif
