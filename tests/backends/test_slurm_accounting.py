"""The accounting path: a cluster with slurmdbd (MariaDB), as real sites run.

The cluster's MinJobAge is 5 s, so finished jobs soon leave ``squeue`` and
only ``sacct`` knows them: the state must come from there, and crash
reconciliation must find them by name there.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster, make_spec, ref, wait_final

from hcflask.backends.slurm import SlurmBackend
from hcflask.states import JobState

pytestmark = pytest.mark.slurm


def test_accounting_path(slurm_accounting: SlurmCluster, tmp_path: Path) -> None:
    cluster = slurm_accounting
    backend = SlurmBackend(cluster.backend_config)
    specs = [
        make_spec(tmp_path / "ok", "hc-acct-ok", "echo hc-ok"),
        make_spec(tmp_path / "bad", "hc-acct-bad", "echo 'no such file: input.root' >&2; exit 3"),
        make_spec(tmp_path / "held", "hc-acct-held", "true", extra_args=["--begin=now+1hour"]),
    ]
    refs = [ref(s, backend.submit(s)) for s in specs]
    cluster.run("scancel", refs[2].backend_id)  # an admin's hand, not hcflask's
    statuses = wait_final(backend, refs)
    assert backend.accounting == "slurmdbd"
    ok, bad, held = (statuses[r.backend_id] for r in refs)
    assert (ok.state, ok.native_state, ok.exit_code) == (JobState.SUCCEEDED, "COMPLETED", 0)
    assert (bad.state, bad.exit_code, bad.reason) == (JobState.FAILED, 3, "exit 3: no such file: input.root")
    assert (held.state, held.reason) == (JobState.CANCELLED, "cancelled by admin (root)")

    # wait until slurmctld forgets them: then only sacct answers
    deadline = time.monotonic() + 120
    while cluster.run("squeue", "-h", "-t", "all", "-o", "%i").stdout.strip():
        assert time.monotonic() < deadline, "slurmctld did not purge the finished jobs"
        time.sleep(2)
    before = dict(backend.calls)
    again = backend.poll_many(refs)
    assert {k: v - before.get(k, 0) for k, v in backend.calls.items() if v != before.get(k, 0)} == {
        "squeue": 1, "sacct": 1}
    assert [again[r.backend_id].state for r in refs] == [ok.state, bad.state, held.state]
    assert again[refs[1].backend_id].reason == bad.reason
    found = backend.find_by_name([ref(s) for s in specs] + [ref(make_spec(tmp_path / "x", "hc-acct-x", "true"))])
    assert found == {r.name: r.backend_id for r in refs}


@pytest.mark.slow
def test_node_failure(slurm_accounting: SlurmCluster, tmp_path: Path) -> None:
    """For real: slurmd dies under a running job and stays away past SlurmdTimeout (10 s here)."""
    cluster = slurm_accounting
    backend = SlurmBackend(cluster.backend_config)
    spec = make_spec(tmp_path, "hc-acct-nodefail", "sleep 600")
    job = ref(spec, backend.submit(spec))
    deadline = time.monotonic() + 30
    while backend.poll_many([job])[job.backend_id].state is not JobState.RUNNING:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.5)
    cluster.stop_node()
    try:
        status = wait_final(backend, [job], timeout=120, interval=2)[job.backend_id]
    finally:
        cluster.start_node()
    assert (status.state, status.native_state) == (JobState.FAILED, "NODE_FAIL")
    assert status.reason == f"node failure on {cluster.node}"
