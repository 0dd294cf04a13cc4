"""Session-scoped real Slurm clusters for the backend tests.

``slurm`` is the plain cluster (no slurmdbd: the backend's fallback path),
``slurm_accounting`` the one with slurmdbd + MariaDB (the path of a real
site).  Each starts only when a test asks for it and is stopped at the end
of the session.  Without the packages the tests are skipped, except in CI
(``CI=true``), where a missing cluster is a failure.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from slurm_cluster import SlurmCluster, available


def _cluster(tmp_path_factory: pytest.TempPathFactory, **kwargs: object) -> Iterator[SlurmCluster]:
    why = available()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"real Slurm needed in CI: {why}")
        pytest.skip(why)
    name = "slurm-acct" if kwargs.get("accounting") else "slurm-plain"
    cluster = SlurmCluster(tmp_path_factory.mktemp(name), **kwargs)  # type: ignore[arg-type]
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    yield from _cluster(tmp_path_factory)


@pytest.fixture(scope="session")
def slurm_accounting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    # a short MinJobAge so a finished job leaves squeue quickly and only sacct knows it
    # and a short SlurmdTimeout so a node failure is declared quickly
    yield from _cluster(tmp_path_factory, accounting=True, min_job_age=5, slurmd_timeout=10)
