#!/usr/bin/env bash
# 42b-fs-options: every value the README's Configuration table documents for a daemon option
# (and the environment spellings of the compression) mounts with replication on, and a
# database written through that mount is flushed at unmount and restored exactly by the CLI.
# 42-fs-args checks the refusals; this checks the acceptances. Regression: -o compression=none
# (and raw, LIBSQL_BOTTOMLESS_COMPRESSION=raw) was refused at mount with "use zstd, gzip or none".
# timeout: 300
source "$BFS_ROOT/tests/lib/common.sh"
source "$BFS_ROOT/tests/lib/fs.sh"
source "$BFS_ROOT/tests/integration/60-repl-lib.bash"

repl_bucket

# check_one N ENV-ASSIGNMENTS ("" for none) OPTIONS: in a mount of its own (checks run three at
# a time, each in a subshell: its exports and its mount stay its own)
check_one() {
    local n=$1 envs=$2 opts=$3
    local db=opt$n.db B=$TEST_TMP/back$n M=$TEST_TMP/mnt$n
    mkdir -p "$B" "$M"
    if [[ -n $envs ]]; then
        # shellcheck disable=SC2086  # word splitting of VAR=VALUE pairs is intended
        export $envs
    fi
    mount_fs "$B" "$M" ${opts:+-o "$opts"}
    if [[ -n $envs ]]; then
        # shellcheck disable=SC2046
        unset $(sed -E 's/=[^ ]*//g' <<<"$envs")
    fi
    sqlite3 "$M/$db" "pragma journal_mode=wal;
        create table t(id integer primary key, v blob);
        with recursive c(i) as (select 1 union all select i + 1 from c where i < 200)
        insert into t(v) select randomblob(100) from c;
        update t set v = randomblob(50) where id % 3 = 0;" >/dev/null ||
        fail "sqlite3 through the mount failed (${envs:+$envs }-o $opts)"
    [[ $(sqlite3 "$M/$db" "select count(*) from t") == 200 ]] || fail "row count (-o $opts)"
    local log=$BFS_FS_LOG
    unmount_fs "$M"
    if [[ ! $opts =~ log_level=(warn|error) ]]; then # the flush line is at level info
        grep -q 'replica: flushed, everything committed is in S3' "$log" ||
            { cat "$log" >&2; fail "unmount did not flush everything (${envs:+$envs }-o $opts)"; }
    fi
    cli -d "$db" restore -o "$TEST_TMP/r$n.db" >/dev/null ||
        fail "restore failed (${envs:+$envs }-o $opts)"
    [[ $(sha3 "$TEST_TMP/r$n.db") == "$(sha3 "$B/$db")" ]] ||
        fail "restore differs from the source (${envs:+$envs }-o $opts)"
    note "ok: ${envs:+$envs }-o ${opts:-(none)}"
}

n=0
PIDS=()
join_checks() {
    local pid
    for pid in "${PIDS[@]}"; do wait "$pid" || fail "a check failed (see above)"; done
    PIDS=()
}
check() { # ENV-ASSIGNMENTS OPTIONS
    n=$((n + 1))
    (check_one "$n" "$@") &
    PIDS+=($!)
    ((${#PIDS[@]} < 3)) || join_checks
}

check "" ""
for c in zstd gzip gz none raw; do
    check "" "compression=$c"
done
check "LIBSQL_BOTTOMLESS_COMPRESSION=raw" ""
check "LIBSQL_BOTTOMLESS_COMPRESSION=gzip LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS=0.2" ""
check "LIBSQL_BOTTOMLESS_BATCH_MAX_FRAMES=3" ""
check "" "batch_interval=0.5,batch_max_frames=7"
check "" "durable,durable_timeout=10"
check "" "writeback"
check "" "writeback=20"
check "" "flush_timeout=30"
check "" "snapshot_max_gens=1,snapshot_wal_pct=1"
check "" "snapshot_wal_min=0"
check "" "snapshot_wal_min=1024"
check "" "list_ttl=1,workers=1"
check "" "spin_us=20"
check "" "nocpu_latency"
check "" "cpu_latency"
check "" "xattr"
check "" "noxattr,nowalcache"
check "" "log_level=warn"
check "" "log_level=debug"
check "" "region=us-east-1,endpoint=$BFS_S3_ENDPOINT,bucket=$BUCKET"
check "" "noatime"
join_checks
echo "ok"
