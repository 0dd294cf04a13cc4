"""The probe catalogue: templates an HPC site needs to prove a partition, shipped with hcflask.

Each probe is one file in ``probes/`` in the same template format as any
other (validated by :func:`hcflask.models.spec.validate_template`), so an
admin can read, export and edit it like their own.  A probe's settings are
the lines of its script marked ``# hc-param:`` (``NAME="${NAME:-default}"``);
``install --set NAME=value`` rewrites that one line, so the installed
template stays a plain template with the site's values in it.

A probe prints ``hc-metric name=value`` (its metrics), ``hc-fact key=value``
(what the commissioning report lists as node facts) and ``hc-probe-ok`` on
success; where it cannot apply it prints ``hc-not-applicable: <reason>``
and exits 4 (see :mod:`hcflask.engine.jobs.judge`).
"""
from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from hcflask.models.spec import ValidationError, validate_template

#: probe templates are named ``probe-<catalogue name>``
PREFIX = "probe-"
#: the run order of ``hc commission`` (cheap facts first), and ``hc catalog list``'s
ORDER = ("node", "cpu-benchmark", "scratch-io", "container", "mpi", "gpu", "cvmfs", "network", "data-access")
_PARAM = re.compile(r'^(?P<indent>[ \t]*)(?P<name>[A-Z][A-Z0-9_]*)="\$\{(?P=name):-(?P<default>[^}]*)\}"'
                    r'[ \t]*# hc-param: (?P<help>.*)$', re.MULTILINE)


@dataclass(frozen=True)
class Param:
    name: str
    default: str
    help: str


@dataclass(frozen=True)
class Probe:
    """One catalogue entry: its short name and its template document."""

    name: str
    document: dict[str, Any]

    @property
    def template_name(self) -> str:
        return str(self.document["name"])

    @property
    def description(self) -> str:
        return " ".join(str(self.document.get("description", "")).split())

    @property
    def params(self) -> list[Param]:
        return [Param(m["name"], m["default"], m["help"].strip())
                for m in _PARAM.finditer(self.document["workload"]["script"])]

    def text(self) -> str:
        return _files()[self.name]


def _files() -> dict[str, str]:
    folder = resources.files(__package__) / "probes"
    return {entry.name.removesuffix(".yaml"): entry.read_text() for entry in folder.iterdir()
            if entry.name.endswith(".yaml")}


def probes() -> list[Probe]:
    """Every probe of the catalogue, in :data:`ORDER` (unknown files last, by name)."""
    files = _files()
    names = sorted(files, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    return [Probe(name, yaml.safe_load(files[name])) for name in names]


def get(name: str, field: str = "name") -> Probe:
    """The probe ``name`` (or ``probe-name``); a clear error naming the known ones."""
    found = {p.name: p for p in probes()}
    probe = found.get(name.removeprefix(PREFIX))
    if probe is None:
        raise ValidationError(field, f"no probe {name!r} in the catalogue (known: {', '.join(found)})")
    return probe


def parse_settings(pairs: list[str] | tuple[str, ...], field: str = "set") -> dict[str, str]:
    """``NAME=value`` strings → a mapping (the value may be empty)."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            raise ValidationError(field, f"expected NAME=value with an upper-case NAME, got {pair!r}")
        out[name] = value
    return out


def render(probe: Probe, settings: Mapping[str, str] | None = None, queues: list[str] | None = None,
           field: str = "set") -> dict[str, Any]:
    """The probe's template document with the site's settings and queues, validated."""
    doc = dict(probe.document)
    workload = dict(doc["workload"])
    script = str(workload["script"])
    known = {p.name for p in probe.params}
    for name, value in (settings or {}).items():
        if name not in known:
            raise ValidationError(field, f"probe {probe.name} has no setting {name} "
                                         f"(settings: {', '.join(sorted(known)) or 'none'})")
        script = _PARAM.sub(lambda m, n=name, v=value: (  # type: ignore[misc]
            f'{m["indent"]}{n}={shlex.quote(v)}  # hc-param: {m["help"]}' if m["name"] == n else m[0]), script)
    workload["script"] = script
    doc["workload"] = workload
    if queues:
        doc["queues"] = list(queues)
    return validate_template(doc)


def matches(probe: Probe, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(probe.name, p) for p in patterns)
