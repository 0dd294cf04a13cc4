"""The job wrapper caps stdout and stderr, keeping head and tail: a success
banner at the start and a metric printed at the end are both still read."""
from __future__ import annotations

from pathlib import Path

from flask import Flask
from sqlalchemy import select

from hcflask.backends import jobscript
from hcflask.extensions import db
from hcflask.models import Job, RollupTotal
from tests.conftest import kill_local_jobs, make_app
from tests.factories import make_queue, make_template, make_test, run_ticks

CAP = 64 * 1024
SCRIPT = ('echo "hc-ok banner"\n'
          'yes "noise line" | head -n 300000\n'
          'yes "err" | head -n 100000 >&2\n'
          'echo "value=7.5"\n')


def test_output_cap_keeps_head_and_tail(tmp_path: Path) -> None:
    app: Flask = make_app(tmp_path / "instance", JOBS_OUTPUT_CAP=CAP)
    try:
        with app.app_context():
            make_queue("q1")
            test = make_test(make_template("t1", ["q1"], script=SCRIPT), app)
            run_ticks(app, lambda: db.session.scalar(select(Job.state)) in ("succeeded", "failed"), timeout=60)
            job = db.session.scalar(select(Job))
            assert job.state == "succeeded", job.failure_reason
            assert {m.name: m.value for m in job.metrics} == {"value": 7.5}
            stdout = (Path(job.workdir) / jobscript.STDOUT).read_text()
            stderr = (Path(job.workdir) / jobscript.STDERR).read_text()
            assert stdout.startswith("hc-ok banner\nnoise line\n") and stdout.endswith("noise line\nvalue=7.5\n")
            assert jobscript.CUT_MARKER in stdout and jobscript.CUT_MARKER in stderr
            assert CAP < len(stdout) < CAP + 200 and CAP < len(stderr) < CAP + 200
            result = jobscript.read_result(Path(job.workdir))
            assert result and result["stdout_cut"] is True and result["stderr_cut"] is True
            assert not list(Path(job.workdir).glob("*.tail")) and not list(Path(job.workdir).glob("*.pipe"))
            total = db.session.scalar(select(RollupTotal))
            assert (total.template, total.succeeded, total.failed) == ("t1", 1, 0)
            page = app.test_client().get(f"/jobs/{job.id}").get_data(as_text=True)
            assert 'data-cut="stdout"' in page and 'data-cut="stderr"' in page and test.id
    finally:
        kill_local_jobs(tmp_path / "instance")


def test_small_output_is_kept_whole(tmp_path: Path) -> None:
    workdir = tmp_path / "job"
    text = jobscript.render(payload='printf "a\\nb\\n"; printf "e" >&2', env={"A": "1"}, workdir=workdir,
                            output_cap=10)
    jobscript.write(workdir, text)
    import subprocess

    assert subprocess.run(["bash", str(workdir / jobscript.WRAPPER)], check=False).returncode == 0
    assert (workdir / "stdout").read_text() == "a\nb\n" and (workdir / "stderr").read_text() == "e"
    result = jobscript.read_result(workdir)
    assert result and result["stdout_cut"] is False and result["stderr_cut"] is False
