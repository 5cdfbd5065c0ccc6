typedef int bfs_s3_placeholder;
