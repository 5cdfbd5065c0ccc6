#!/usr/bin/python3
"""59-cli-bucketgen.py - an independent writer of the bottomless bucket layout for the CLI tests.

Not a test itself (run-integration.sh only runs *.sh); the 5*-cli-*.sh tests call it. It builds
generations from a real SQLite database with python's sqlite3 and boto3, following
../shared/reference/bottomless-format.md (§2, §3.1): frames are cut from the real -wal file at
commit boundaries, so the checksum chain is SQLite's own.

usage: 59-cli-bucketgen.py --bucket B --db NAME --workdir DIR STEP...
steps (executed in order):
  gen[:EPOCH][:SNAP][:nodep]  start a new generation (TRUNCATE checkpoint first). EPOCH = created
                              time (default now), SNAP = zstd|gz|raw|none (default none for the
                              first generation, zstd after), nodep = no .dep to the previous one
  sql:TEXT                    run TEXT as one transaction
  ship[:TS][:COMP]            upload the committed frames not yet shipped as one batch named
                              with timestamp TS (default now) and COMP (zstd|gz|raw, default zstd)
  save:NAME                   copy the current database state to DIR/NAME.db (backup API)
  genid:NAME                  write the current generation id to DIR/NAME.gen
Environment: BFS_S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION.
"""
import gzip
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import time
import uuid

import boto3

EPOCH = 253370761200


def gen_id(created):
    sec = int(created)
    nsec = int((created - sec) * 1e9)
    ms = (EPOCH - sec) * 1000 + (999999999 - nsec) // 1000000
    r = os.urandom(10)
    b = ms.to_bytes(6, "big") + bytes([0x70 | (r[0] & 0x0F), r[1], 0x80 | (r[2] & 0x3F)]) + r[3:10]
    return str(uuid.UUID(bytes=b))


def compress(data, comp):
    if comp == "raw":
        return data
    if comp == "gz":
        return gzip.compress(data)
    return subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout


class Builder:
    def __init__(self, bucket, db, workdir):
        self.s3 = boto3.client("s3", endpoint_url=os.environ["BFS_S3_ENDPOINT"])
        self.bucket, self.db, self.dir = bucket, db, workdir
        self.path = os.path.join(workdir, "source.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.unlink(self.path + suffix)
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        self.gen = None
        self.shipped = 0
        self.meta_done = False

    def put(self, suffix, body):
        self.s3.put_object(Bucket=self.bucket, Key=f"{self.db}-{self.gen}/{suffix}", Body=body)

    def new_gen(self, created, snap, dep):
        if self.gen is not None:
            busy, _, _ = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            assert busy == 0, "checkpoint busy"
        prev, self.gen = self.gen, gen_id(created)
        self.shipped, self.meta_done = 0, False
        if snap is None:
            snap = "none" if prev is None else "zstd"
        with open(self.path, "rb") as f:
            main = f.read()
        if snap != "none" and len(main) > 0:
            self.put(f"db.{snap}", compress(main, snap))
            self.put(".changecounter", main[24:28])
        if prev is not None and dep:
            self.put(".dep", uuid.UUID(prev).bytes)

    def ship(self, ts, comp):
        with open(self.path + "-wal", "rb") as f:
            wal = f.read()
        if len(wal) < 32:
            return
        page_size = struct.unpack(">I", wal[8:12])[0]
        if not self.meta_done:
            self.put(".meta", wal[8:12] + wal[24:32])
            self.meta_done = True
        fsize = 24 + page_size
        n = (len(wal) - 32) // fsize
        last_commit = 0
        for i in range(1, n + 1):
            off = 32 + (i - 1) * fsize
            if struct.unpack(">I", wal[off + 4:off + 8])[0] != 0:
                last_commit = i
        if last_commit <= self.shipped:
            return
        first = self.shipped + 1
        body = wal[32 + (first - 1) * fsize:32 + last_commit * fsize]
        self.put(f"{first:012d}-{last_commit:012d}-{ts}.{comp}", compress(body, comp))
        self.shipped = last_commit

    def save(self, name):
        out = sqlite3.connect(os.path.join(self.dir, name + ".db"))
        self.conn.backup(out)
        out.close()


def main(argv):
    args = {}
    while argv and argv[0].startswith("--"):
        args[argv[0][2:]] = argv[1]
        argv = argv[2:]
    b = Builder(args["bucket"], args["db"], args["workdir"])
    for step in argv:
        kind, _, rest = step.partition(":")
        if kind == "gen":
            parts = rest.split(":") if rest else []
            created = float(parts[0]) if parts and parts[0] else time.time()
            snap = parts[1] if len(parts) > 1 and parts[1] else None
            b.new_gen(created, snap, not (len(parts) > 2 and parts[2] == "nodep"))
        elif kind == "sql":
            b.conn.executescript("BEGIN;" + rest + ";COMMIT;")
        elif kind == "ship":
            parts = rest.split(":") if rest else []
            ts = int(parts[0]) if parts and parts[0] else int(time.time())
            b.ship(ts, parts[1] if len(parts) > 1 else "zstd")
        elif kind == "save":
            b.save(rest)
        elif kind == "genid":
            with open(os.path.join(b.dir, rest + ".gen"), "w") as f:
                f.write(b.gen + "\n")
        else:
            sys.exit(f"bucketgen: unknown step {step!r}")
    b.conn.close()


if __name__ == "__main__":
    main(sys.argv[1:])
