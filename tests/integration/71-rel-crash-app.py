#!/usr/bin/python3
"""71-rel-crash-app.py DB LOG ROUND SEED - the crash-loop application (used by 7*-rel-crash*.sh).

Writes random transactions to DB (WAL mode, synchronous=NORMAL, small page cache so big
transactions spill to the WAL before they commit) until it is killed or an I/O error stops
it. Each transaction has the next id (max(tx.id) + 1) and:
  - inserts tx(id, rnd, size, payload) with a payload of a random size (tens of bytes ...
    1 MiB: small and cache-spilling transactions),
  - updates or deletes random rows of `data` (in-place page changes) and inserts new ones,
  - sets meta.last = id (a transaction-consistency witness: always equals max(tx.id)).
Every ~40 transactions it runs a random wal_checkpoint mode (PASSIVE/FULL/RESTART/TRUNCATE).

LOG (outside the mount, opened O_APPEND, one write(2) per line):
  "I <id> <round>"  written before COMMIT (intent: the id may be committed)
  "C <id> <round>"  written after COMMIT returned (the app saw it committed)
"""
import os
import random
import sqlite3
import sys


def main():
    db, log, rnd, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def line(s):
        os.write(fd, (s + "\n").encode())

    c = sqlite3.connect(db, isolation_level=None, timeout=30)
    c.execute("pragma journal_mode=wal")
    c.execute("pragma synchronous=normal")
    c.execute("pragma cache_size=-256")  # 256 KiB: bigger transactions spill
    c.execute("create table if not exists tx(id integer primary key, rnd int, size int, "
              "payload blob)")
    c.execute("create table if not exists data(k integer primary key, v blob)")
    c.execute("create table if not exists meta(one integer primary key check (one = 1), "
              "last int)")
    c.execute("insert or ignore into meta values (1, 0)")
    n = 0
    while True:
        nid = (c.execute("select coalesce(max(id), 0) from tx").fetchone()[0]) + 1
        r = rng.random()
        # Sizes keep the database growing by ~40 KiB per transaction on average: every round
        # restores it twice, and 50 rounds must fit in `make torture`'s hour.
        if r < 0.70:
            size = rng.randrange(16, 2000)
        elif r < 0.95:
            size = rng.randrange(2000, 60000)
        else:
            size = rng.randrange(320 << 10, 1 << 20)  # > the 256 KiB cache: spills
        c.execute("begin")
        c.execute("insert into tx values (?, ?, ?, randomblob(?))", (nid, rnd, size, size))
        for _ in range(rng.randrange(0, 8)):
            k = rng.randrange(1, 5000)
            op = rng.random()
            if op < 0.5:
                c.execute("insert or replace into data values (?, randomblob(?))",
                          (k, rng.randrange(10, 3000)))
            elif op < 0.8:
                c.execute("update data set v = randomblob(?) where k = ?",
                          (rng.randrange(10, 3000), k))
            else:
                c.execute("delete from data where k between ? and ?", (k, k + 20))
        c.execute("update meta set last = ?", (nid,))
        line("I %d %d" % (nid, rnd))
        c.execute("commit")
        line("C %d %d" % (nid, rnd))
        n += 1
        if n % 40 == 0:
            mode = rng.choice(["PASSIVE", "FULL", "RESTART", "TRUNCATE"])
            c.execute("pragma wal_checkpoint(%s)" % mode).fetchall()


if __name__ == "__main__":
    try:
        main()
    except (sqlite3.Error, OSError) as e:  # the mount went away under us: expected
        print("app: stopped: %s" % e, file=sys.stderr)
        sys.exit(3)
