"""What the robot reads for one pass at time ``now``: outcomes, tests and claims.

Every query takes the pass time, so the live pass (``now`` = the clock) and
the replay (``now`` = a moment in the past) read the database the same way:
only jobs judged by ``now`` (``judged_at``, or ``ended_at`` for rows from
before that column), only tests started by then, claims as they stood then.
The outcomes are one query per pass: for every queue x test pair a
correlated ``IN (... ORDER BY ended_at DESC LIMIT keep)`` walks the
``(queue_id, ended_at)`` index backwards, so the cost follows the pairs,
not the jobs in the window (bench/bench_robot.py).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, true
from sqlalchemy.orm import aliased

from hcflask.engine.robot.decide import QueueView, RobotClaim
from hcflask.engine.robot.rules import Outcome, Settings
from hcflask.extensions import db
from hcflask.models import Job, Queue, QueueClaim, Test
from hcflask.signatures import of_claim
from hcflask.states import JobState, QueueStatus

COUNTED = (JobState.SUCCEEDED.value, JobState.FAILED.value)
#: releases that start anti-flapping (a rollback undoes a wrong exclusion: it does not)
FLAP_RELEASES = ("admin", "recover")


def hours_back(settings: Settings) -> float:
    """How far back a pass looks: the largest window anywhere in the settings."""
    tables = [settings.base, *settings.templates.values(), *settings.queues.values()]
    return max(float(t["window_hours"]) for t in tables if "window_hours" in t)


def driving_tests(settings: Settings, since: datetime, now: datetime) -> dict[int, Test]:
    """Tests whose jobs may count at ``now``: started by then, snapshot says autoexclusion, not switched off."""
    tests = db.session.scalars(select(Test).where(
        Test.started_at.is_not(None), Test.started_at <= now,
        or_(Test.finished_at.is_(None), Test.finished_at >= since)))
    return {t.id: t for t in tests
            if t.snapshot.get("autoexclusion") and settings.get(template=t.template_name)["autoexclusion"]}


def expected_templates(tests: Iterable[Test], now: datetime) -> dict[str, set[str]]:
    """Queue name -> the driving templates running on it at ``now``."""
    expected: dict[str, set[str]] = defaultdict(set)
    running = [t for t in tests if t.started_at is not None and t.started_at <= now
               and (t.finished_at is None or t.finished_at > now)]
    # a test holds its queues by id: a queue renamed since is covered under its name now
    ids = {i for t in running for i in t.queue_ids or []}
    names = dict(db.session.execute(select(Queue.id, Queue.name).where(Queue.id.in_(ids))).all()) if ids else {}
    for test in running:
        for i, name in enumerate(test.queue_names):
            ident = test.queue_ids[i] if i < len(test.queue_ids or []) else 0
            expected[names.get(ident, name)].add(test.template_name)
    return expected


def covered(settings: Settings, now: datetime) -> set[str]:
    """The queues a driving test runs on at ``now``: the robot's (and the bands') denominator."""
    tests = driving_tests(settings, since_for(now, settings), now)
    return set(expected_templates(tests.values(), now))


def gather(tests: Mapping[int, Test], since: datetime, keep: int,
           now: datetime) -> dict[int, dict[str, list[Outcome]]]:
    """queue id -> template -> the newest ``keep`` outcomes per test judged by ``now``, newest first."""
    out: dict[int, dict[str, list[Outcome]]] = defaultdict(lambda: defaultdict(list))
    if not tests:
        return out
    newest = aliased(Job)
    per_pair = select(newest.id).where(
        newest.queue_id == Queue.id, newest.test_id == Test.id, newest.state.in_(COUNTED), newest.ended_at >= since,
        newest.ended_at <= now, func.coalesce(newest.judged_at, newest.ended_at) <= now,
    ).order_by(newest.ended_at.desc(), newest.id.desc()).limit(keep)
    pairs = select(Queue).join(Test, Test.id.in_(list(tests)))
    if db.session.get_bind().dialect.name == "postgresql":
        # PostgreSQL runs "job.id IN (correlated subquery)" once per job row (seconds at
        # a few thousand jobs); a LATERAL join runs it once per queue x test
        top = per_pair.add_columns(newest.queue_id, newest.test_id, newest.state, newest.ended_at,
                                   newest.failure_reason, newest.failure_signature).lateral()
        rows = pairs.with_only_columns(top.c.id, top.c.queue_id, top.c.test_id, top.c.state, top.c.ended_at,
                                       top.c.failure_reason, top.c.failure_signature).join(top, true())
    else:
        rows = pairs.with_only_columns(Job.id, Job.queue_id, Job.test_id, Job.state, Job.ended_at, Job.failure_reason,
                                       Job.failure_signature).join(Job, Job.id.in_(per_pair.correlate(Queue, Test)))
    for row in db.session.execute(rows):
        out[row.queue_id][tests[row.test_id].template_name].append(
            Outcome(row.id, row.state == JobState.SUCCEEDED.value, row.ended_at, row.failure_reason or "",
                    row.failure_signature or ""))
    for per_template in out.values():
        for outcomes in per_template.values():
            outcomes.sort(key=lambda o: (o.ended_at, o.job_id), reverse=True)
    return out


def claims_at(now: datetime, live: bool) -> dict[int, list[QueueClaim]]:
    """Claims per queue id as they stood at ``now`` (live: the active ones)."""
    where: Any = QueueClaim.released_at.is_(None)
    if not live:
        where = and_(QueueClaim.created_at <= now, or_(QueueClaim.released_at.is_(None), QueueClaim.released_at > now))
    out: dict[int, list[QueueClaim]] = defaultdict(list)
    for claim in db.session.scalars(select(QueueClaim).where(where).order_by(QueueClaim.id)):
        out[claim.queue_id].append(claim)
    return out


def flap_from(now: datetime | None, rules: Iterable[str] = FLAP_RELEASES) -> dict[int, datetime]:
    """Queue id -> the last manual release or recovery by ``now`` (None: every committed one)."""
    query = select(QueueClaim.queue_id, func.max(QueueClaim.released_at)).where(
        QueueClaim.release_rule.in_(list(rules))).group_by(QueueClaim.queue_id)
    if now is not None:
        query = query.where(QueueClaim.released_at <= now)
    return {queue_id: when for queue_id, when in db.session.execute(query) if when is not None}


def queue_views(now: datetime, live: bool) -> list[QueueView]:
    """Every queue with its claims at ``now`` and the version a write must find.

    Live, the queue rows (their versions) are read first and the claims and releases after
    them, and every committed release counts whatever its time: a release that committed
    after the pass took ``now``, or was stamped by a clock that runs ahead, is still seen
    whenever the version it bumped is, so the write's compare-and-set can never pass on
    evidence the admin dismissed.
    """
    catalogue = Queue.live() if live else select(Queue)  # a replay also sees queues deleted since
    queues = list(db.session.scalars(catalogue.order_by(Queue.name)))
    claims = claims_at(now, live)
    flaps = flap_from(None if live else now)
    views = []
    for queue in queues:
        mine = {c.source: c for c in claims.get(queue.id, [])}
        robot = mine.get("robot")
        admin = mine.get("admin")
        views.append(QueueView(
            queue.id, queue.name, queue.backend, queue.status if live else _derived(mine), queue.version,
            queue.status_changed_at, queue.autoexclusion, admin.status if admin else None,
            RobotClaim(robot.created_at, of_claim(robot.failure)) if robot else None, "performance" in mine,
            flaps.get(queue.id)))
    return views


def _derived(claims: Mapping[str, QueueClaim]) -> str:
    from hcflask.engine.status import derive

    return derive(claims.values()) if claims else QueueStatus.ONLINE.value


def since_for(now: datetime, settings: Settings) -> datetime:
    return now - timedelta(hours=hours_back(settings))
