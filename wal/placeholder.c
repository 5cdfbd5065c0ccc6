typedef int bfs_wal_placeholder;
