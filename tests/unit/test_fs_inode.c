/* tests/unit/test_fs_inode.c - the inode table (fs/inode.c, compiled in here because fs/ has no
 * library): lookup counts, hard-link identity, growth past the initial bucket count, forget,
 * virtual entries and their promotion to real inodes. */
#include "../../fs/inode.c"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>

static int fake_fd(void)
{
    int fd = open("/", O_PATH | O_CLOEXEC);
    cr_assert(fd >= 0);
    return fd;
}

static struct stat fake_st(dev_t dev, ino_t ino)
{
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_dev = dev;
    st.st_ino = ino;
    st.st_mode = S_IFREG | 0644;
    return st;
}

static struct inode_table *new_table(void)
{
    struct stat root = fake_st(1, 2);
    root.st_mode = S_IFDIR | 0755;
    struct inode_table *t = inode_table_new(fake_fd(), &root);
    cr_assert_not_null(t);
    return t;
}

Test(fs_inode, root_is_fuse_root_id)
{
    struct inode_table *t = new_table();
    cr_expect_eq(inode_id(t, inode_root(t)), FUSE_ROOT_ID);
    cr_expect_eq(inode_of(t, FUSE_ROOT_ID), inode_root(t));
    struct stat st = fake_st(1, 2); /* the root's own key finds the root */
    cr_expect_eq(inode_get(t, fake_fd(), &st), inode_root(t));
    inode_unref(t, inode_root(t), 1000); /* never freed */
    cr_expect_eq(inode_root(t)->fd >= 0, true);
    inode_table_free(t);
}

Test(fs_inode, same_key_same_inode_and_counts)
{
    struct inode_table *t = new_table();
    struct stat st = fake_st(1, 42);
    struct fs_inode *a = inode_get(t, fake_fd(), &st);
    struct fs_inode *b = inode_get(t, fake_fd(), &st); /* a hard link: same (dev, ino) */
    cr_assert_not_null(a);
    cr_expect_eq(a, b);
    cr_expect_eq(a->nlookup, 2);
    cr_expect_eq(inode_count(t), 1);
    cr_expect_eq(inode_of(t, inode_id(t, a)), a);
    inode_unref(t, a, 1);
    cr_expect_eq(inode_find(t, 1, 42), a);
    inode_unref(t, a, 1);
    cr_expect_null(inode_find(t, 1, 42));
    cr_expect_eq(inode_count(t), 0);
    inode_table_free(t);
}

Test(fs_inode, many_inodes_survive_growth)
{
    struct inode_table *t = new_table();
    enum { N = 5000 };
    static struct fs_inode *ins[N];
    for (int i = 0; i < N; i++) {
        struct stat st = fake_st((dev_t)(i % 3), (ino_t)(1000 + i));
        ins[i] = inode_get(t, fake_fd(), &st);
        cr_assert_not_null(ins[i]);
    }
    cr_expect_eq(inode_count(t), N);
    for (int i = 0; i < N; i++)
        cr_expect_eq(inode_find(t, (dev_t)(i % 3), (ino_t)(1000 + i)), ins[i]);
    for (int i = 0; i < N; i += 2)
        inode_unref(t, ins[i], 1);
    cr_expect_eq(inode_count(t), N / 2);
    for (int i = 1; i < N; i += 2)
        cr_expect_eq(inode_find(t, (dev_t)(i % 3), (ino_t)(1000 + i)), ins[i]);
    cr_expect_null(inode_find(t, 0, 1000));
    inode_table_free(t); /* frees the rest, closes their fds */
}

Test(fs_inode, virtual_then_promoted)
{
    struct inode_table *t = new_table();
    struct stat vst = fake_st(0, 0);
    vst.st_size = 8192;
    struct fs_inode *v = inode_get_virtual(t, "d/app.db", &vst);
    cr_assert_not_null(v);
    cr_expect_eq(v->kind, FS_INODE_VIRTUAL);
    cr_expect_eq(v->fd, -1);
    cr_expect_eq(inode_get_virtual(t, "d/app.db", &vst), v);
    cr_expect_eq(v->nlookup, 2);
    struct stat real = fake_st(1, 77);
    inode_promote(t, v, fake_fd(), &real);
    cr_expect_eq(v->kind, FS_INODE_REAL);
    cr_expect_eq(inode_find(t, 1, 77), v);
    cr_expect(v->fd >= 0);
    /* a later lookup of the restored file finds the same node */
    cr_expect_eq(inode_get(t, fake_fd(), &real), v);
    inode_unref(t, v, 3);
    cr_expect_null(inode_find(t, 1, 77));
    inode_table_free(t);
}

Test(fs_inode, special_inodes_are_not_counted)
{
    struct inode_table *t = new_table();
    struct fs_inode *d = inode_status_dir(t);
    struct fs_inode *f = inode_status_file(t);
    cr_expect_eq(d->kind, FS_INODE_STATUS_DIR);
    cr_expect_eq(f->kind, FS_INODE_STATUS_FILE);
    inode_ref(t, d);
    inode_unref(t, d, 5);
    inode_unref(t, f, 5);
    cr_expect_eq(inode_of(t, inode_id(t, f)), f);
    inode_table_free(t);
}
