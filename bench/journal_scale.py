#!/usr/bin/python3
"""Fills a runbook journal with N synthetic runs (default 100,000), for bench/journal_scale.sh.

The journal's schema is made by runbook itself (the script runs `runbook runs` on the new file
first), so the rows have the shape the engine writes. The mix is that of a busy team's year: 8
runbooks, about 60 % rehearsals and 40 % live runs, most of them succeeded; 10 % failed at an
effect, a few interrupted, crashed or with a runbook error; some failed live runs resumed by the
next one. Each run has 5 steps and 8 effects (a failed run's last effect failed).
"""
import json
import random
import sqlite3
import subprocess
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: journal_scale.py RUNBOOK_BIN JOURNAL [RUNS]")
    binary, path = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    subprocess.run([binary, "runs", "--journal", path], check=True, stdout=subprocess.DEVNULL)
    rnd = random.Random(7)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    books = ["emergency", "node-api-rollback", "alembic-rollback", "dependency-rollback",
             "feature-flag-rollback", "system-rollback", "sprint-rollback", "pre-deploy-backup"]
    names = ["http.get", "fs.backup", "git.checkout", "service.restart", "http.wait_healthy",
             "pg.exec", "redis.get", "fs.write"]
    start = 1_700_000_000_000
    runs, steps, effects = [], [], []
    resume_next = None
    first_id = (db.execute("SELECT COALESCE(MAX(id), 0) FROM runs").fetchone()[0]) + 1
    for k in range(n):
        rid = first_id + k
        book = rnd.choice(books)
        mode = "dry-run" if rnd.random() < 0.6 else "live"
        parent = 0
        if resume_next is not None:
            mode, parent, book = "resume", resume_next, runs[-1][2]
            resume_next = None
        r = rnd.random()
        outcome = ("succeeded" if r < 0.85 else "failed" if r < 0.95 else "interrupted" if r < 0.97
                   else "crashed" if r < 0.99 else "error")
        t0 = start + k * 60_000
        dur = rnd.randint(200, 600_000)
        ended = 0 if outcome == "crashed" else t0 + dur
        runs.append([rid, parent, book, "1.0.0", "/srv/runbooks/%s.lua" % book, "%064x" % rid,
                     json.dumps({"app": "/srv/app", "env": "production"}), mode, t0, ended,
                     outcome, "" if outcome == "succeeded" else "step 3 failed",
                     {"succeeded": 0, "failed": 1, "interrupted": 130, "crashed": -1, "error": 2}[outcome],
                     5, "/var/lib/runbook/artifacts/%d" % rid, 0])
        if parent:
            runs[-2][-1] = rid  # resumed_by of the run it continues
        if mode == "live" and outcome == "failed" and rnd.random() < 0.3:
            resume_next = rid
        for s in range(5):
            failed_here = outcome in ("failed", "interrupted") and s == 4
            steps.append((rid, s, 1, "step %d" % s, t0 + s * 10, t0 + s * 10 + 9,
                          "failed" if failed_here else "succeeded", "boom" if failed_here else ""))
        for e in range(8):
            last = e == 7
            state = "failed" if last and outcome == "failed" else "done"
            if outcome == "crashed" and last:
                state = "begun"
            name = names[e]
            effects.append((rid, e + 1, min(e // 2, 4), 1, name,
                            "change" if name in ("fs.backup", "git.checkout", "service.restart", "fs.write") else "probe",
                            json.dumps({"url": "http://127.0.0.1:3000/health"}), name + " something",
                            state, json.dumps({"ok": True, "status": 200}), t0 + e, t0 + e + 1))
        if len(effects) > 50_000:
            flush(db, runs[:-1], steps, effects)
            runs, steps, effects = runs[-1:], [], []
    flush(db, runs, steps, effects)
    db.commit()
    db.close()


def flush(db, runs, steps, effects):
    db.executemany(
        "INSERT INTO runs(id, parent_id, runbook, version, file, sha256, params, mode, started_ms, "
        "ended_ms, outcome, error, exit_code, steps_total, artifacts, resumed_by, host, user, cwd) "
        "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'host1','oncall','/srv')", runs)
    db.executemany("INSERT INTO steps(run_id, idx, attempt, name, started_ms, ended_ms, outcome, error) "
                   "VALUES(?,?,?,?,?,?,?,?)", steps)
    db.executemany("INSERT INTO effects(run_id, seq, step_idx, attempt, name, kind, args, describe, "
                   "state, result, started_ms, ended_ms) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", effects)


if __name__ == "__main__":
    main()
