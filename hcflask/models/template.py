"""Templates: test types, stored as their validated document."""
from __future__ import annotations

import fnmatch
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from hcflask.extensions import Model
from hcflask.models.common import iso, utcnow
from hcflask.models.names import name_key as fold_name
from hcflask.models.spec import validate_template
from hcflask.models.spec_export import ORDER, export_document


class Template(Model):
    __tablename__ = "template"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    #: the name without regard to case, unique: ``SITE-A`` and ``site-a`` are one name (models/names.py)
    name_key: Mapped[str] = mapped_column(String(128), unique=True, index=True, server_default="")
    description: Mapped[str] = mapped_column(Text, default="")
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)
    lifetime: Mapped[int] = mapped_column(default=86400)
    jobs_in_flight: Mapped[int] = mapped_column(default=1)
    max_jobs: Mapped[int] = mapped_column(default=0)
    max_running: Mapped[int] = mapped_column(default=0)
    autoexclusion: Mapped[bool] = mapped_column(default=False)
    renew: Mapped[bool] = mapped_column(default=False)
    workload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: ``functional`` or ``stress`` (then ``stress`` holds the ramp, max_jobs, abort_fail_rate)
    kind: Mapped[str] = mapped_column(String(16), default="functional")
    stress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: input data the jobs read (a Rucio dataset or files; models/spec_inputs.py), or None
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: the stage-out of every job (rse, lifetime, scope; models/spec_inputs.py), or None
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    tests = relationship("Test", back_populates="template", order_by="Test.id.desc()", lazy="dynamic")

    @validates("name")
    def _keep_key(self, _key: str, name: str) -> str:
        """Every write of the name writes its case-free key too (the unique index keeps it one)."""
        self.name_key = fold_name(name)
        return name

    DOCUMENT_FIELDS = ORDER

    @classmethod
    def from_document(cls, raw: Any) -> Template:
        template = cls()
        template.update_from(raw)
        return template

    def update_from(self, raw: Any) -> None:
        """Validate ``raw`` and take its values (raises ValidationError first)."""
        doc = validate_template(raw)
        for key in self.DOCUMENT_FIELDS:
            setattr(self, key, doc[key])

    def to_document(self) -> dict[str, Any]:
        """The template as a file/API document (what a test snapshots)."""
        doc = {key: getattr(self, key) for key in self.DOCUMENT_FIELDS}
        for key in ("stress", "inputs", "outputs"):
            if doc[key] is None:
                del doc[key]
        return doc

    def to_file(self) -> dict[str, Any]:
        """The template as ``hc template export`` writes it: only what applies, in the schema's order."""
        return export_document(self.to_document())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, **self.to_document(), "active": self.active,
            "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
        }


def match_queues(patterns: list[str], names: list[str]) -> list[str]:
    """Queue names matching any of the names or glob patterns, in catalogue order."""
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
