"""Rollups: per queue × template × UTC day, what the reports need.

Written in the same transaction as each job reaching a final state (see
:mod:`hcflask.engine.data.rollups`), so they never disagree with the job rows,
and kept forever: the retention pass deletes old job rows, not these.

Availability pieces (ARGO style): each finished job's outcome holds from
its end until the next finished job of the same queue × template, for at
most the robot window.  ``known_seconds`` is time with an outcome,
``up_seconds`` the part of it with a success; the ``*_offline_seconds``
are the parts of both that fell while an admin had the queue ``offline``
(scheduled downtime, left out of reliability).
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from hcflask.extensions import Model

#: the additive columns of :class:`Rollup` (and of :class:`RollupTotal` but the time pieces)
#: (a ``not_applicable`` job adds to the seconds only: it says nothing about the queue; the
#: per-test counts keep it, :class:`RollupTest`)
COUNTS = ("succeeded", "failed", "cancelled", "lost", "core_seconds", "wall_seconds")
TIMES = ("known_seconds", "up_seconds", "known_offline_seconds", "up_offline_seconds")


class _Counts:
    """The additive columns both rollups share (:data:`COUNTS`)."""

    succeeded: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    cancelled: Mapped[int] = mapped_column(default=0)
    lost: Mapped[int] = mapped_column(default=0)
    #: cores × (end − start) of the jobs that ended, and the plain wall time
    core_seconds: Mapped[float] = mapped_column(default=0.0)
    wall_seconds: Mapped[float] = mapped_column(default=0.0)


class Rollup(_Counts, Model):
    __tablename__ = "rollup"
    __table_args__ = (Index("ix_rollup_day", "day"),)

    queue_id: Mapped[int] = mapped_column(ForeignKey("queue.id"), primary_key=True)
    template: Mapped[str] = mapped_column(String(128), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    known_seconds: Mapped[float] = mapped_column(default=0.0)
    up_seconds: Mapped[float] = mapped_column(default=0.0)
    known_offline_seconds: Mapped[float] = mapped_column(default=0.0)
    up_offline_seconds: Mapped[float] = mapped_column(default=0.0)


class RollupReason(Model):
    """Failed and lost jobs by failure signature (the column keeps its old name), per queue × template × day."""

    __tablename__ = "rollup_reason"

    queue_id: Mapped[int] = mapped_column(ForeignKey("queue.id"), primary_key=True)
    template: Mapped[str] = mapped_column(String(128), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    reason: Mapped[str] = mapped_column(String(200), primary_key=True)
    n: Mapped[int] = mapped_column(default=0)


class RollupTotal(_Counts, Model):
    """All-time sums per queue × template: what /metrics exports as counters."""

    __tablename__ = "rollup_total"

    queue_id: Mapped[int] = mapped_column(ForeignKey("queue.id"), primary_key=True)
    template: Mapped[str] = mapped_column(String(128), primary_key=True)


class RollupTest(Model):
    """Jobs of each test that reached a final state, per queue and outcome: what the test
    lists and pages count (the jobs still in flight are counted live, through the state
    index), so a list of 50 old tests of 10k jobs each reads 50 × 165 rows, not 500k."""

    __tablename__ = "rollup_test"

    test_id: Mapped[int] = mapped_column(ForeignKey("test.id"), primary_key=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("queue.id"), primary_key=True)
    succeeded: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    cancelled: Mapped[int] = mapped_column(default=0)
    lost: Mapped[int] = mapped_column(default=0)
    #: probes that did not apply where they ran (kept apart from the four outcomes)
    not_applicable: Mapped[int] = mapped_column(default=0)


class Tally(Model):
    """Running numbers kept beside the rollups.  ``job_rows_purged:<state>``: finished jobs
    in that state whose rows retention deleted; with the all-time totals and the jobs in
    flight they give the number of job rows without counting millions of them (the jobs
    list's ``total``)."""

    __tablename__ = "tally"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupTail(Model):
    """The last finished job of each queue × template: where its outcome interval starts."""

    __tablename__ = "rollup_tail"

    queue_id: Mapped[int] = mapped_column(ForeignKey("queue.id"), primary_key=True)
    template: Mapped[str] = mapped_column(String(128), primary_key=True)
    ended_at: Mapped[datetime]
    ok: Mapped[bool]
