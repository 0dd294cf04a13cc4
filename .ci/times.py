"""Print the table that ends a CI run: how long each step took.

    python3 .ci/times.py STEPS TOX_JSON

STEPS has one "name<TAB>seconds" line per step, written by .ci/run and
.ci/install.sh (HC_CI_TIMES); TOX_JSON is tox's --result-json, from which
each tox environment's setup (its virtualenv and installs) and commands
come.  The environments ran side by side, so their times overlap: the
"tox" line is the wall time of all of them.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def tox_rows(path: Path) -> list[tuple[str, float, str]]:
    """(environment, seconds, what) for every environment tox ran, longest first."""
    try:
        envs = json.loads(path.read_text())["testenvs"]
    except (OSError, ValueError, KeyError):
        return []
    rows = []
    for name, env in envs.items():
        if name.startswith(".") or "result" not in env:
            continue  # the package build is part of every environment's setup
        setup = sum(step["elapsed"] for step in env.get("setup", []))
        commands = sum(step["elapsed"] for step in env.get("test", []))
        outcome = "ok" if env["result"]["success"] else f"FAILED ({env['result']['exit_code']})"
        rows.append((f"tox -e {name}", float(env["result"]["duration"]),
                     f"{outcome}: setup {setup:.0f} s, commands {commands:.0f} s"))
    return sorted(rows, key=lambda row: -row[1])


def main(steps: Path, tox_json: Path) -> None:
    rows: list[tuple[str, float, str]] = []
    for line in steps.read_text().splitlines():
        name, _, seconds = line.partition("\t")
        rows.append((name, float(seconds), ""))
    total = next((row for row in rows if row[0] == "total"), None)
    rows = [row for row in rows if row[0] != "total"]
    at = next((i for i, row in enumerate(rows) if row[0] == "tox"), len(rows))
    rows[at + 1:at + 1] = [(f"  {name}", seconds, what) for name, seconds, what in tox_rows(tox_json)]
    if total:
        rows.append(total)
    width = max(len(name) for name, _, _ in rows)
    print("\n== CI times (steps side by side overlap; 'total' is the wall time)")
    for name, seconds, what in rows:
        print(f"{name:<{width}}  {seconds:6.0f} s  {what}".rstrip())


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
