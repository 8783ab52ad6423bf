"""Checks that the counts at the top of dotnet/PORTING.md are those of its tables."""
import collections
import re
import sys

text = open(sys.argv[1], encoding="utf-8").read()
body = text.split("## Member by member")[1].split("## Only here")[0]
counts = collections.Counter()
for line in body.splitlines():
    if not line.startswith("|"):
        continue
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) != 4 or cells[2] in ("Status", "---"):
        continue
    if cells[2] not in ("same", "renamed", "different", "missing"):
        sys.exit(f"PORTING.md: unknown status {cells[2]!r} in: {line}")
    counts[cells[2]] += 1
m = re.search(r"\| same \| renamed \| different \| missing \| rows \|\n\|[-:| ]+\|\n\| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|", text)
if not m:
    sys.exit("PORTING.md: no counts table")
stated = tuple(int(x) for x in m.groups())
actual = (counts["same"], counts["renamed"], counts["different"], counts["missing"], sum(counts.values()))
if stated != actual:
    sys.exit(f"PORTING.md: counts say {stated}, the tables have {actual} (same, renamed, different, missing, rows)")
print("porting guide: same %d, renamed %d, different %d, missing %d, rows %d" % actual)
