"""The catalogue's container probe with the real Apptainer: an image starts and runs a command.

The image is a small sandbox folder (the host's sh, cat and true with their libraries, and an
os-release), so the test needs no image build; Apptainer is the real one of the container
contract (natively, or from the Debian-sid root when run as root, through a one-line
``apptainer`` on the jobs' PATH).
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from apptainer_runtime import Runtime

from hcflask.cli.catalog import catalog_group, commission_command
from tests.conftest import make_app
from tests.factories import make_queue

pytestmark = pytest.mark.container
PROGRAMS = ("/bin/sh", "/bin/cat", "/bin/true")


def sandbox(root: Path) -> Path:
    """A minimal image folder: the programs and the libraries ldd names for them."""
    for name in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
        (root / name).mkdir(parents=True, exist_ok=True)
    for program in PROGRAMS:
        shutil.copy2(program, root / "bin")
        libs = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout.split()
        for lib in (w for w in libs if w.startswith("/")):
            target = root / lib.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(lib), target)
    (root / "etc" / "os-release").write_text('PRETTY_NAME="hcflask probe sandbox"\n')
    for path in root.rglob("*"):
        path.chmod(0o755)
    return root


def test_container_probe_passes_with_a_real_image(runtime: Runtime, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    image = sandbox(runtime.work / "probe-sandbox")
    if runtime.in_root:  # the jobs call `apptainer`: here it lives in the sid root
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        wrapper = bin_dir / "apptainer"
        prefix = runtime.argv()[:-1]  # without the --quiet the probe passes itself
        wrapper.write_text(f'#!/bin/bash\nexec {shlex.join(prefix)} "$@"\n')
        wrapper.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    app = make_app(tmp_path / "instance", JOBS_RESULT_GRACE_SECONDS=5)
    with app.app_context():
        make_queue("local")
    runner = app.test_cli_runner()
    assert runner.invoke(catalog_group, ["install", "container", "--set", f"IMAGE={image}"]).exit_code == 0
    result = runner.invoke(commission_command, ["local", "--probes", "container", "--json"])
    assert result.exit_code == 0, result.output
    probe = json.loads(result.stdout[result.stdout.index("{"):])["probes"][0]
    assert probe["verdict"] == "pass", probe
    assert probe["facts"]["runtime"].startswith("apptainer version")
    start = {m["metric"]: m["summary"]["median"] for m in probe["metrics"] if m["summary"]}["start_seconds"]
    assert 0 < start < 60
    print(f"\ncontainer probe: apptainer exec start {start:.2f} s")
