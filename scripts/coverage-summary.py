#!/usr/bin/env python3
"""Recounts the "Summary NNN:" line under each seed coverage table of docs/runbooks.md from the
table's rows and rewrites it in place (--check: only report a line that differs, exit 1).
items = rows; carried = rows naming what carries them (not "—"); live-tested / dry-run only /
not yet / out of scope = rows whose live? cell starts so; "carried but not exercised" = not-yet
rows that do name a carrier."""
import re, sys

path = sys.argv[-1] if len(sys.argv) > 1 and not sys.argv[-1].startswith("--") else "docs/runbooks.md"
check = "--check" in sys.argv
text = open(path, encoding="utf-8").read()
out, pos, bad = [], 0, []
for m in re.finditer(r"### (\d{3})[^\n]*\n<!-- coverage:begin -->\n(.*?)<!-- coverage:end -->\n\n(Summary \d{3}:[^\n]*)", text, re.S):
    seed, table, line = m.group(1), m.group(2), m.group(3)
    n = carried = live = dry = notyet = notyet_carried = oos = 0
    for row in table.splitlines():
        if not row.startswith("| ") or row.startswith("|---") or row.startswith("| §"):
            continue
        cells = [c.strip() for c in row.strip().strip("|").split(" | ")]
        if len(cells) < 5:
            continue
        n += 1
        has = cells[2] not in ("—", "-", "")
        carried += has
        status = cells[4]
        if status.startswith("yes"): live += 1
        elif status.startswith("dry-run"): dry += 1
        elif status.startswith("not yet"):
            notyet += 1
            notyet_carried += has
        elif status.startswith("out of scope"): oos += 1
    want = (f"Summary {seed}: {n} items, {carried} carried, {live} live-tested, {dry} dry-run only, "
            f"{notyet} not yet ({notyet_carried} of them carried but not exercised), {oos} out of scope.")
    if want != line:
        bad.append((line, want))
        out.append(text[pos:m.start(3)] + want)
    else:
        out.append(text[pos:m.end(3)])
    pos = m.end(3)
out.append(text[pos:])
if check:
    for old, new in bad:
        print(f"{path}: stale line\n  {old}\n  should be\n  {new}")
    sys.exit(1 if bad else 0)
open(path, "w", encoding="utf-8").write("".join(out))
for old, new in bad:
    print(new)
