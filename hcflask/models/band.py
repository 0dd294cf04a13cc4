"""The performance bands the robot and the reports judge a metric by: one row per queue ×
template × metric.  A module of its own, apart from the robot's other models: ``hc test
report`` reads the bands and declares only this one (:mod:`hcflask.models`).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hcflask.extensions import Model
from hcflask.models.common import iso


class MetricBand(Model):
    """The control band of one queue × template × metric.

    Computed from the first ``baseline`` finished jobs, or from the window an
    admin pinned (``pinned_from``/``pinned_to``); ``None`` mean means "not
    enough points yet".
    """

    __tablename__ = "metric_band"
    __table_args__ = (UniqueConstraint("queue_id", "template", "metric", name="uq_metric_band"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("queue.id"), index=True)
    template: Mapped[str] = mapped_column(String(128))
    metric: Mapped[str] = mapped_column(String(128))
    mean: Mapped[float | None]
    sigma: Mapped[float | None]
    k: Mapped[float] = mapped_column(default=3.0)
    points: Mapped[int] = mapped_column(default=0)
    #: the last job of the baseline: later jobs are the ones flagged
    baseline_until: Mapped[datetime | None]
    #: ties on ``baseline_until`` (same second) are broken by job id
    baseline_job_id: Mapped[int | None]
    pinned_from: Mapped[datetime | None]
    pinned_to: Mapped[datetime | None]
    pinned_by: Mapped[str] = mapped_column(String(128), default="")
    computed_at: Mapped[datetime | None]

    @property
    def lower(self) -> float | None:
        return None if self.mean is None or self.sigma is None else self.mean - self.k * self.sigma

    @property
    def upper(self) -> float | None:
        return None if self.mean is None or self.sigma is None else self.mean + self.k * self.sigma

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "queue_id": self.queue_id, "template": self.template, "metric": self.metric,
            "mean": self.mean, "sigma": self.sigma, "k": self.k, "lower": self.lower, "upper": self.upper,
            "points": self.points, "baseline_until": iso(self.baseline_until),
            "pinned_from": iso(self.pinned_from), "pinned_to": iso(self.pinned_to),
            "pinned_by": self.pinned_by, "computed_at": iso(self.computed_at),
        }
