"""The CI machinery's own logic: .ci/install.sh's order of apt-get calls and scripts, and the
table of times that ends .ci/run.

install.sh is run for real on a copy of .ci with three small install scripts; ``apt-get`` and
``dpkg-query`` are stand-ins on $PATH (a fake, because installing Debian packages for a test is
neither quick nor repeatable), which log what they were asked, in order, with the scripts' own
steps.  apt.sh's policy-rc.d and install.sh's lock go to temporary paths.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

DPKG_QUERY = """#!/bin/bash
# installed when apt-get put it in the state file
grep -qx "${@: -1}" "$STATE" 2>/dev/null && echo "install ok installed" && exit 0
exit 1
"""
APT_GET = """#!/bin/bash
words=("$@")
if [[ " $* " == *" update "* ]]; then echo "apt-get update" >> "$EVENTS"; exit 0; fi
packages="${words[*]:6}"  # after: -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends
echo "apt-get begin $packages" >> "$EVENTS"
sleep 1
printf '%s\\n' $packages >> "$STATE"
echo "apt-get end $packages" >> "$EVENTS"
"""
SCRIPTS = {
    # the Rucio venv's shape: no package, a pip step
    "install-a.sh": 'apt_install\necho "a builds" >> "$EVENTS"\n',
    # the PanDA server's shape: builds on one package, the tests need two more
    "install-b.sh": 'apt_build pkg-dev\napt_install pkg-server pkg-shared\necho "b builds" >> "$EVENTS"\n',
    # apt only
    "install-c.sh": 'apt_install pkg-shared pkg-tool\necho "c done" >> "$EVENTS"\n',
}


@pytest.fixture
def ci(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("install.sh installs nothing without root")
    folder = tmp_path / ".ci"
    folder.mkdir()
    for name in ("apt.sh", "install.sh"):
        shutil.copy(ROOT / ".ci" / name, folder / name)
    for name, body in SCRIPTS.items():
        (folder / name).write_text(f'#!/bin/bash\nset -euo pipefail\nsource "$(dirname "$0")/apt.sh"\n{body}')
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("dpkg-query", DPKG_QUERY), ("apt-get", APT_GET)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return folder


def run_install(ci: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    events = ci.parent / "events"
    done = subprocess.run(["bash", str(ci / "install.sh")], capture_output=True, text=True, timeout=60, env={
        **os.environ, "PATH": f"{ci.parent / 'bin'}:{os.environ['PATH']}", "EVENTS": str(events),
        "STATE": str(ci.parent / "state"), "HC_POLICY_RC_D": str(ci.parent / "policy-rc.d"),
        "HC_CI_LOCK": str(ci.parent / "lock"), **env})
    return done, events.read_text().splitlines() if events.exists() else []


def test_install_uses_two_apt_calls_and_builds_while_the_rest_installs(ci: Path) -> None:
    done, events = run_install(ci, HC_APT_UPDATE="1", HC_CI_TIMES=str(ci.parent / "times"))
    assert done.returncode == 0, done.stdout + done.stderr
    installs = [e for e in events if e.startswith("apt-get begin")]
    assert installs == ["apt-get begin pkg-dev", "apt-get begin pkg-server pkg-shared pkg-tool"], events
    assert [e for e in events if e.startswith("apt-get")][0] == "apt-get update", events
    assert events.count("apt-get update") == 1, events
    at = events.index
    assert at("a builds") < at("apt-get end pkg-dev"), "the script needing no package waited for apt"
    assert at("apt-get end pkg-dev") < at("b builds") < at("apt-get end pkg-server pkg-shared pkg-tool"), events
    assert at("c done") > at("apt-get end pkg-server pkg-shared pkg-tool"), events
    assert not (ci.parent / "policy-rc.d").exists()
    times = (ci.parent / "times.install").read_text()
    for step in ("apt-get install, for builds (1 packages)", "apt-get install, the rest (3 packages)",
                 ".ci/install-a.sh", ".ci/install-b.sh", ".ci/install-c.sh"):
        assert f"  {step}\t" in times, times
    # once installed, nothing is asked of apt again
    again, after = run_install(ci)
    assert again.returncode == 0 and not [e for e in after[len(events):] if e.startswith("apt-get")], after


def test_a_failing_install_script_fails_the_install_and_says_which(ci: Path) -> None:
    (ci / "install-a.sh").write_text('#!/bin/bash\nsource "$(dirname "$0")/apt.sh"\napt_install\nexit 3\n')
    done, _ = run_install(ci)
    assert done.returncode == 1
    assert re.search(r"^== \.ci/install-a\.sh \(\d+ s\) FAILED$", done.stdout, re.M), done.stdout


def test_the_times_table_lists_each_step_and_each_tox_environment(tmp_path: Path) -> None:
    steps = tmp_path / "steps"
    steps.write_text("pip install tox\t6\n.ci/install.sh\t140\n  apt-get install, the rest (90 packages)\t85\n"
                     "tox\t610\ntotal\t760\n")
    result = tmp_path / "tox.json"
    result.write_text(json.dumps({"testenvs": {
        ".pkg": {"setup": [{"elapsed": 3.0}]},
        "py": {"setup": [{"elapsed": 2.0}], "test": [{"elapsed": 1.0}, {"elapsed": 590.0}],
               "result": {"success": True, "exit_code": 0, "duration": 600.0}},
        "style": {"test": [{"elapsed": 1.5}], "result": {"success": False, "exit_code": 1, "duration": 2.0}},
    }}))
    table = subprocess.run([sys.executable, str(ROOT / ".ci" / "times.py"), str(steps), str(result)],
                           capture_output=True, text=True, check=True).stdout.strip().splitlines()
    assert table[0].startswith("== CI times")
    names = [re.match(r"(.*?) +\d+ s", line).group(1) for line in table[1:]]  # type: ignore[union-attr]
    assert names == ["pip install tox", ".ci/install.sh", "  apt-get install, the rest (90 packages)", "tox",
                     "  tox -e py", "  tox -e style", "total"], table
    assert table[5].split() == ["tox", "-e", "py", "600", "s", "ok:", "setup", "2", "s,", "commands", "591", "s"]
    assert "FAILED (1)" in table[6] and table[-1].split() == ["total", "760", "s"]
