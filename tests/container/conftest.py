"""Fixtures for the container contract: the real Apptainer, the built image, an unprivileged user.

Why: the contract is about what a user without root sees when running hc.sif.
CI runs as root on a host whose libc is too old for Apptainer, so as root every
command runs inside the Debian-sid root of container/apptainer-root.sh as the
unprivileged user ``hcuser``; as a non-root user with ``apptainer`` on PATH (an
HPC login node) the commands run natively as that user.  A missing Apptainer
fails these tests loudly; it never skips them.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from apptainer_runtime import BUILD_SCRIPT, FIGURES, ROOT_SCRIPT, RUN_UID, RUN_USER, Runtime


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("container figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name:<34} {value}")


@pytest.fixture(scope="session")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    work = tmp_path_factory.mktemp("container")
    if os.geteuid() != 0:
        if shutil.which("apptainer") is None:
            pytest.fail("no apptainer on PATH: the container contract needs the real runtime")
        return Runtime(work, os.getuid())
    start = time.monotonic()
    made = subprocess.run([ROOT_SCRIPT, "ensure"], capture_output=True, text=True, timeout=900, check=False)
    assert made.returncode == 0, f"Debian-sid root with Apptainer failed:\n{made.stderr}"
    FIGURES["sid root with Apptainer (cached)"] = f"{time.monotonic() - start:.0f} s"
    subprocess.run([ROOT_SCRIPT, "adduser", RUN_USER, str(RUN_UID)], check=True, timeout=60)
    os.chmod(work, 0o755)  # noqa: S103 - the unprivileged user reads the image in it
    root = Path(os.environ.get("HC_APPTAINER_ROOT", "/var/tmp/hcflask-apptainer-root"))
    return Runtime(work, RUN_UID, in_root=True, home=root / "home" / RUN_USER)


@pytest.fixture(scope="session")
def image(runtime: Runtime) -> Path:
    """hc.sif built from hc.def by container/build.sh, the documented one command.

    ``HC_TEST_SIF=path`` tests an image built before instead (quicker reruns).
    """
    sif = runtime.work / "hc.sif"
    if prebuilt := os.environ.get("HC_TEST_SIF"):
        shutil.copyfile(prebuilt, sif)
    else:
        start = time.monotonic()
        built = subprocess.run([BUILD_SCRIPT, str(sif)], capture_output=True, text=True, timeout=900, check=False)
        assert built.returncode == 0, f"build.sh failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
        FIGURES["build time (wheelhouse + image)"] = f"{time.monotonic() - start:.0f} s"
    FIGURES["image size"] = f"{sif.stat().st_size / 2**20:.1f} MiB"
    return sif
