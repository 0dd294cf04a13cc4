"""The robot's rules: small named functions of a queue's recent outcomes.

Each rule looks at the finished jobs of one queue, per exclusion-driving
template, newest first, and either fires (returning the rule name, a
sentence and the job ids that decided it) or not.  They are pure functions
of plain data so they are quick (see ``bench/bench_robot.py``) and easy to
test; the robot pass (:mod:`hcflask.engine.robot.robot`) gathers the data and
acts.  Every number comes from the ``[robot]`` section of ``hc.toml``,
overridable per template (``[robot.templates.<name>]``) and per queue
(``[robot.queues.<name>]``, which wins).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from hcflask.config import DICT_SECTIONS, ConfigError

DEFAULTS: dict[str, Any] = {k: v for k, v in DICT_SECTIONS["ROBOT"].items() if not isinstance(v, dict)}
#: keys that only make sense globally
GLOBAL_ONLY = {"enabled", "outage_share", "outage_min_queues", "guard_window_hours", "outage_rollback",
               "action_timeout", "action_retries", "action_backoff_seconds"}
#: the least value that keeps a setting meaning something: ``exclude_last = 0`` would silently
#: switch its rule off (``[robot] enabled = false`` or a queue's ``autoexclusion = false`` do that)
AT_LEAST: dict[str, int] = {"exclude_last": 1, "pair_first": 1, "pair_second": 1, "spread_last": 1,
                            "spread_templates": 1, "recover_last": 1, "outage_min_queues": 1,
                            "band_baseline": 2, "band_run": 1}
#: settings that must be above 0 (a zero window sees no job; a zero band flags every value)
ABOVE_ZERO = {"window_hours", "band_k", "action_timeout"}
AT_MOST: dict[str, float] = {"outage_share": 1.0}


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    """One finished job as the rules see it."""

    job_id: int
    ok: bool
    ended_at: datetime
    reason: str = ""
    #: the failure signature stored when the job was judged ('' for jobs judged before signatures)
    signature: str = ""


@dataclasses.dataclass(slots=True)
class Series:
    """The outcomes of one queue × template, newest first, with its settings."""

    template: str
    outcomes: list[Outcome]
    params: Mapping[str, Any]

    def failed(self, n: int) -> list[Outcome] | None:
        """The last ``n`` outcomes if all failed, else None."""
        last = self.outcomes[:n]
        return last if n > 0 and len(last) == n and not any(o.ok for o in last) else None


@dataclasses.dataclass(frozen=True, slots=True)
class Hit:
    rule: str
    reason: str
    job_ids: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """``exclude``, ``healthy``, ``needs_jobs`` or ``failing`` (some failures, no rule)."""

    kind: str
    rule: str | None = None
    reason: str = ""
    job_ids: tuple[int, ...] = ()


def _ids(outcomes: Sequence[Outcome]) -> tuple[int, ...]:
    return tuple(o.job_id for o in outcomes)


def last_failed_in_one(series: Sequence[Series], params: Mapping[str, Any]) -> Hit | None:
    """The last ``exclude_last`` jobs of one template failed."""
    for s in series:
        n = int(s.params["exclude_last"])
        last = s.failed(n)
        if last:
            return Hit("last_failed_in_one", f"the last {n} jobs of {s.template} failed", _ids(last))
    return None


def failed_in_two(series: Sequence[Series], params: Mapping[str, Any]) -> Hit | None:
    """The last ``pair_first`` jobs failed in one template and the last ``pair_second`` in another."""
    first, second = int(params["pair_first"]), int(params["pair_second"])
    for a in series:
        last_a = a.failed(first)
        if not last_a:
            continue
        for b in series:
            last_b = b.failed(second) if b is not a else None
            if last_b:
                return Hit("failed_in_two", f"the last {first} jobs of {a.template} and the last {second} "
                           f"of {b.template} failed", _ids(last_a) + _ids(last_b))
    return None


def failed_in_many(series: Sequence[Series], params: Mapping[str, Any]) -> Hit | None:
    """The last ``spread_last`` jobs failed in ``spread_templates`` templates."""
    n, k = int(params["spread_last"]), int(params["spread_templates"])
    hits = [(s.template, last) for s in series if (last := s.failed(n))]
    if k <= 0 or len(hits) < k:
        return None
    names = ", ".join(t for t, _ in hits[:k])
    return Hit("failed_in_many", f"the last {n} job(s) failed in {len(hits)} templates ({names})",
               tuple(i for _, last in hits[:k] for i in _ids(last)))


Rule = Callable[[Sequence[Series], Mapping[str, Any]], Hit | None]
#: the exclusion rules in the order they are tried, with the settings they read
RULES: list[tuple[str, Rule, tuple[str, ...]]] = [
    ("last_failed_in_one", last_failed_in_one, ("exclude_last",)),
    ("failed_in_two", failed_in_two, ("pair_first", "pair_second")),
    ("failed_in_many", failed_in_many, ("spread_last", "spread_templates")),
]


def all_recent_succeeded(series: Sequence[Series], params: Mapping[str, Any]) -> Hit | None:
    """Recovery: the last ``recover_last`` jobs of every driving template succeeded."""
    ids: list[int] = []
    for s in series:
        n = int(s.params["recover_last"])
        last = s.outcomes[:n]
        if len(last) < n or not all(o.ok for o in last):
            return None
        ids.extend(_ids(last))
    if not ids:
        return None
    return Hit("all_recent_succeeded", "the last jobs of every driving template succeeded", tuple(ids))


def judge_queue(series: Sequence[Series], params: Mapping[str, Any]) -> Verdict:
    """The verdict on one queue from its series (one per driving template)."""
    for _name, rule, _keys in RULES:
        hit = rule(series, params)
        if hit:
            return Verdict("exclude", hit.rule, hit.reason, hit.job_ids)
    short = [s for s in series if len(s.outcomes) < int(s.params["recover_last"])]
    if not series or short:
        detail = ", ".join(f"{s.template}: {len(s.outcomes)} of {s.params['recover_last']}" for s in short)
        return Verdict("needs_jobs", None, f"too few finished jobs ({detail or 'no driving test'})")
    hit = all_recent_succeeded(series, params)
    if hit:
        return Verdict("healthy", hit.rule, hit.reason, hit.job_ids)
    failing = [s.template for s in series if s.outcomes and not s.outcomes[0].ok]
    return Verdict("failing", None, f"recent failures in {', '.join(failing) or 'some templates'}, no rule fired")


def rule_table(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What the robot page lists: each rule, its description and its current settings."""
    rows = [{"name": name, "description": (rule.__doc__ or "").strip().replace("``", ""),
             "params": {k: config.get(k, DEFAULTS[k]) for k in keys}} for name, rule, keys in RULES]
    rows.append({"name": "all_recent_succeeded",
                 "description": (all_recent_succeeded.__doc__ or "").strip().replace("``", ""),
                 "params": {"recover_last": config.get("recover_last", DEFAULTS["recover_last"])}})
    return rows


def _check_values(values: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    for key, value in values.items():
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key '{key}' (allowed: {', '.join(sorted(allowed))})")
        kind = type(DEFAULTS[key])
        if kind is bool and not isinstance(value, bool):
            raise ConfigError(f"{where}.{key}: expected true or false, got {value!r}")
        if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise ConfigError(f"{where}.{key}: expected a non-negative number, got {value!r}")
        if kind is int and not isinstance(value, int):
            raise ConfigError(f"{where}.{key}: expected a whole number, got {value!r}")
        if kind in (int, float):
            _check_range(key, value, where)


def _check_range(key: str, value: float, where: str) -> None:
    """The limits of :data:`AT_LEAST`, :data:`ABOVE_ZERO` and :data:`AT_MOST`: the same for hc.toml,
    ``hc robot replay --set`` and the replay API."""
    if not math.isfinite(value):
        raise ConfigError(f"{where}.{key}: expected a finite number, got {value:g}")
    if key in AT_LEAST and value < AT_LEAST[key]:
        raise ConfigError(f"{where}.{key}: must be at least {AT_LEAST[key]}, got {value:g}")
    if key in ABOVE_ZERO and value <= 0:
        raise ConfigError(f"{where}.{key}: must be greater than 0, got {value:g}")
    if key in AT_MOST and value > AT_MOST[key]:
        raise ConfigError(f"{where}.{key}: must be at most {AT_MOST[key]:g}, got {value:g}")


def check_config(robot: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the key for anything wrong in ``[robot]``."""
    scalars = {k: v for k, v in robot.items() if k not in ("templates", "queues", "actions")}
    _check_values(scalars, "robot", set(DEFAULTS))
    for section in ("templates", "queues"):
        for name, values in (robot.get(section) or {}).items():
            if not isinstance(values, dict):
                raise ConfigError(f"robot.{section}.{name}: must be a table")
            _check_values(values, f"robot.{section}.{name}", set(DEFAULTS) - GLOBAL_ONLY)
    check_actions(robot.get("actions") or {})


#: the events an action can follow, and the keys of each type of action
EVENTS = ("exclude", "recover", "alert")
TYPES = {"record": set(), "command": {"argv", "undo", "timeout", "name"},
         "webhook": {"url", "timeout", "retries", "headers", "name"}}


def check_actions(actions: Mapping[str, Any]) -> None:
    """Raise ConfigError naming the key for a malformed ``[robot.actions]`` (run by
    :mod:`hcflask.engine.notify`; checked here, with the rest of ``[robot]``, because every
    app checks its config and the actions' own module imports the backends)."""
    for backend, events in actions.items():
        where = f"robot.actions.{backend}"
        if not isinstance(events, dict):
            raise ConfigError(f"{where}: must be a table")
        for event, entries in events.items():
            if event not in EVENTS:
                raise ConfigError(f"{where}: unknown event '{event}' (one of: {', '.join(EVENTS)})")
            if not isinstance(entries, list):
                raise ConfigError(f"{where}.{event}: must be a list of actions")
            for i, entry in enumerate(entries):
                _check_entry(entry, f"{where}.{event}[{i}]")


def _check_entry(entry: Any, where: str) -> None:
    if not isinstance(entry, dict) or entry.get("type") not in TYPES:
        raise ConfigError(f"{where}: needs type = one of {', '.join(TYPES)}")
    extra = set(entry) - TYPES[entry["type"]] - {"type"}
    if extra:
        raise ConfigError(f"{where}: unknown key '{sorted(extra)[0]}'")
    if entry["type"] == "command":
        argv = entry.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise ConfigError(f"{where}.argv: must be a non-empty list of strings")
        undo = entry.get("undo", ["-"])
        if not isinstance(undo, list) or not undo or not all(isinstance(a, str) for a in undo):
            raise ConfigError(f"{where}.undo: must be a non-empty list of strings")
    if entry["type"] == "webhook" and not str(entry.get("url", "")).startswith(("http://", "https://")):
        raise ConfigError(f"{where}.url: must be an http:// or https:// URL")


class Settings:
    """Resolved settings: global, per template, per queue (cached per pass)."""

    def __init__(self, robot: Mapping[str, Any]) -> None:
        self.base = {**DEFAULTS, **{k: v for k, v in robot.items() if k in DEFAULTS}}
        self.templates: Mapping[str, Mapping[str, Any]] = robot.get("templates") or {}
        self.queues: Mapping[str, Mapping[str, Any]] = robot.get("queues") or {}
        self.actions: Mapping[str, Any] = robot.get("actions") or {}
        self._cache: dict[tuple[str | None, str | None], dict[str, Any]] = {}

    def get(self, queue: str | None = None, template: str | None = None) -> dict[str, Any]:
        key = (queue, template)
        if key not in self._cache:
            merged = dict(self.base)
            if template is not None:
                merged.update(self.templates.get(template) or {})
            if queue is not None:
                merged.update(self.queues.get(queue) or {})
            self._cache[key] = merged
        return self._cache[key]

    def max_of(self, *keys: str) -> int:
        """The largest value of ``keys`` anywhere (how many outcomes a series may need)."""
        tables = [self.base, *self.templates.values(), *self.queues.values()]
        return max(int(t[k]) for t in tables for k in keys if k in t)
