"""The top entries of a py-spy profile of the service, per tick, as text (for docs/scale.md).

    py-spy record --pid <scheduler pid> --gil -d 30 -f raw -o prof.txt     # collapsed stacks
    python bench/flame_top.py prof.txt [--top 15]

For each tick (the stacks under ``submission_tick`` and ``monitor_tick``) it
prints the share of that tick's samples each function is on the stack for
(inclusive), hcflask's own functions and the library calls they make, so the
table says where a tick's time goes without opening the SVG.  ``--gil`` samples only
the thread that holds the interpreter's lock: without it, a thread waiting for the
lock (the ticks and the local backend's starter share one) is counted where it waits.
"""
from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:]+)(?::\d+)?\)$")
TICKS = ("submission_tick", "monitor_tick", "core_tick")
#: library calls worth a line of their own (the rest of SQLAlchemy's frames are noise)
KEY = ("_emit_lazyload", "Session.flush", "Session.commit", "Connection._execute_context", "Popen.__init__",
       "_execute_child", "read_text", "cursor.execute", "execute (", "executemany")


def short(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("hcflask/", "sqlalchemy/", "site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1] if marker != "hcflask/" else "hcflask/" + path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profile", type=Path, help="py-spy record -f raw output")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--all", action="store_true", help="every function, not only hcflask's and key calls")
    args = parser.parse_args()
    totals: Counter[str] = Counter()
    inclusive: dict[str, Counter[str]] = {t: Counter() for t in TICKS}
    for line in args.profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        tick = next((t for t in TICKS for f in frames if f.startswith(t + " ")), None)
        if tick is None:
            continue
        totals[tick] += int(count)
        start = next(i for i, f in enumerate(frames) if f.startswith(tick + " "))
        for name in {short(f) for f in frames[start + 1:]}:
            inclusive[tick][name] += int(count)
    for tick in TICKS:
        print(f"\n{tick}: {totals[tick]} samples")
        wanted = [(name, n) for name, n in inclusive[tick].most_common()
                  if args.all or "hcflask/" in name or any(k in name for k in KEY)]
        for name, n in wanted[:args.top]:
            print(f"  {100 * n / max(totals[tick], 1):5.1f} %  {name}")


if __name__ == "__main__":
    main()
