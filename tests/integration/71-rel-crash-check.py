#!/usr/bin/python3
"""71-rel-crash-check.py local|restore DB LOG - checks a database written by 71-rel-crash-app.py.

History: the app's LOG lists "I id round" before each COMMIT and "C id round" after it
returned. The committed history H is the C lines in order (ids 1, 2, ... each with the round
that committed it; an id without a C line below the last C id was committed by a killed
app just before it died: the next round continued after it, so its version is its last I
line). One more transaction may be committed without its C line (the app was killed between
COMMIT and the log write): the I line of id max(H)+1.

Both modes: PRAGMA integrity_check is ok; tx ids are exactly 1..k (no gap: transactions are
atomic and ordered); meta.last == k (the witness updated in the same transaction); every
payload has its recorded size; and DB is a prefix of the history: for id <= max(H) the row's
round is H's, and an id max(H)+1 (if present) matches its I line. Nothing else.
local:   additionally every id of H is present (nothing the app saw committed is lost).
Prints "k=<k> committed=<max(H)>"; exit 1 with a reason on failure.
"""
import sqlite3
import sys


def main():
    mode, path, log = sys.argv[1], sys.argv[2], sys.argv[3]
    committed, intent = {}, {}
    with open(log) as f:
        for ln in f:
            w = ln.split()
            if len(w) != 3:
                continue  # a torn last line (app killed inside write: cannot happen, 1 write)
            kind, i, r = w[0], int(w[1]), int(w[2])
            (committed if kind == "C" else intent)[i] = r
    maxc = max(committed) if committed else 0
    for i in range(1, maxc + 1):
        if i not in committed:
            # committed without its C line (app killed right after COMMIT): later ids exist,
            # so the app found it in the database; the version is its last I line
            if i not in intent:
                return "log: id %d neither intended nor committed" % i
            committed[i] = intent[i]
    c = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    ic = c.execute("pragma integrity_check").fetchall()
    if ic != [("ok",)]:
        return "integrity_check: %r" % ic[:5]
    try:
        rows = c.execute("select id, rnd, size, length(payload) from tx order by id").fetchall()
        last = c.execute("select last from meta").fetchone()
    except sqlite3.OperationalError as e:
        if mode == "restore" and "no such table" in str(e):
            rows, last = [], (0,)
        else:
            raise
    last = last[0] if last else 0
    k = len(rows)
    for n, (i, r, size, plen) in enumerate(rows, 1):
        if i != n:
            return "gap: row %d has id %d" % (n, i)
        if size != plen:
            return "id %d: payload %d bytes, recorded %d" % (i, plen, size)
        if i <= maxc:
            if committed[i] != r:
                return "id %d: round %d, committed history says round %d" % (i, r, committed[i])
        elif i == maxc + 1 and intent.get(i) == r:
            pass
        else:
            return "id %d (round %d) was never committed (max committed %d)" % (i, r, maxc)
    if last != k:
        return "meta.last=%d but %d tx rows: not transaction-consistent" % (last, k)
    if mode == "local" and k < maxc:
        return "local database lost committed transactions: has 1..%d, app saw 1..%d" % (k, maxc)
    print("k=%d committed=%d" % (k, maxc))
    return None


if __name__ == "__main__":
    why = main()
    if why:
        print("check %s %s: %s" % (sys.argv[1], sys.argv[2], why), file=sys.stderr)
        sys.exit(1)
