"""The disk guard on a small real filesystem (a tmpfs mounted for the test):
low free space pauses submission with an alert; freeing it resumes both."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from hcflask.engine.jobs.submission import submission_tick
from hcflask.engine.service.diskguard import free_percent
from hcflask.extensions import db
from hcflask.models import Alert, Job
from tests.conftest import kill_local_jobs, make_app
from tests.factories import make_queue, make_template, make_test


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs (needs root, as in CI)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs in CI: {done.stderr}")
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        kill_local_jobs(mount / "instance")
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount: Path, leave_percent: float) -> Path:
    """A file that leaves about ``leave_percent`` of the filesystem free."""
    st = os.statvfs(mount)
    keep = int(st.f_blocks * leave_percent / 100)
    path = mount / "filler"
    with path.open("wb") as fh:
        fh.write(b"\0" * max(0, (st.f_bavail - keep) * st.f_frsize))
    return path


def jobs() -> int:
    return db.session.scalar(select(func.count()).select_from(Job)) or 0


def test_low_disk_pauses_submission_and_it_resumes(small_fs: Path) -> None:
    app: Flask = make_app(small_fs / "instance", DISK_MIN_FREE_PERCENT=20.0)
    with app.app_context():
        make_queue("q1")
        make_test(make_template("t1", ["q1"], script="sleep 30"), app)
        filler = fill(small_fs, leave_percent=10)
        assert free_percent(str(small_fs)) < 20
        assert submission_tick(app) == {"cancelled": 0, "created": 0, "submitted": 0, "paused": 1}
        assert jobs() == 0
        alert = db.session.scalar(select(Alert).where(Alert.kind == "disk"))
        assert alert is not None and alert.closed_at is None and str(small_fs / "instance") in alert.message
        assert 'hc_alerts_open{kind="disk"} 1' in app.test_client().get("/metrics").get_data(as_text=True)
        filler.unlink()
        summary = submission_tick(app)
        assert summary and summary["created"] == 1 and "paused" not in summary
        db.session.expire_all()
        assert jobs() == 1 and db.session.get(Alert, alert.id).closed_at is not None
        db.session.remove()
        db.engine.dispose()
