"""``kind: stress`` in the template document: defaults, and every error names its field."""
from __future__ import annotations

import pytest

from hcflask.engine.jobs.stress import step_index
from hcflask.models.spec import ValidationError, validate_template

RAMP = [{"at": 0, "in_flight": 2}, {"at": 300, "in_flight": 10}]


def doc(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {"name": "t", "queues": ["local"], "workload": {"script": "echo hc-ok"},
                               "kind": "stress", "stress": {"ramp": RAMP, "max_jobs": 200}}
    base.update(overrides)
    return base


def test_functional_is_the_default_and_has_no_stress_section() -> None:
    out = validate_template({"name": "t", "queues": ["q"], "workload": {"script": "x"}})
    assert (out["kind"], out["stress"]) == ("functional", None)


def test_stress_section_is_normalised() -> None:
    out = validate_template(doc())
    assert out["kind"] == "stress"
    assert out["stress"] == {"ramp": RAMP, "max_jobs": 200, "abort_fail_rate": None}
    assert validate_template(doc(stress={"ramp": RAMP, "max_jobs": 5, "abort_fail_rate": 0.5}))["stress"][
        "abort_fail_rate"] == 0.5


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"kind": "soak"}, "kind"),
        ({"kind": "functional"}, "stress"),
        ({"autoexclusion": True}, "autoexclusion"),
        ({"renew": True}, "renew"),
        ({"stress": {"max_jobs": 5}}, "stress.ramp"),
        ({"stress": {"ramp": [], "max_jobs": 5}}, "stress.ramp"),
        ({"kind": None}, "kind"),
        ({"stress": None}, "stress"),
        ({"stress": {"ramp": [{"at": -1, "in_flight": 1}], "max_jobs": 5}}, "stress.ramp[0].at"),
        ({"stress": {"ramp": [{"at": 0, "in_flight": 0}], "max_jobs": 5}}, "stress.ramp[0].in_flight"),
        ({"stress": {"ramp": [{"at": 0}], "max_jobs": 5}}, "stress.ramp[0].in_flight"),
        ({"stress": {"ramp": [{"at": 0, "in_flight": 1, "x": 1}], "max_jobs": 5}}, "stress.ramp[0].x"),
        ({"stress": {"ramp": RAMP}}, "stress.max_jobs"),
        ({"stress": {"ramp": RAMP, "max_jobs": 5, "abort_fail_rate": 1.5}}, "stress.abort_fail_rate"),
        ({"stress": {"ramp": RAMP, "max_jobs": 5, "abort_fail_rate": "half"}}, "stress.abort_fail_rate"),
        ({"stress": {"ramp": RAMP, "max_jobs": 5, "slot": 1}}, "stress.slot"),
    ],
)
def test_errors_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_template(doc(**overrides))
    assert info.value.field == field


def test_ramp_is_sorted_and_a_later_step_at_the_same_second_wins() -> None:
    ramp = [{"at": 60, "in_flight": 5}, {"at": 10, "in_flight": 1}, {"at": 60, "in_flight": 7}]
    out = validate_template(doc(stress={"ramp": ramp, "max_jobs": 9}))["stress"]["ramp"]
    assert out == [{"at": 10, "in_flight": 1}, {"at": 60, "in_flight": 7}]


def test_the_step_in_force_is_the_last_one_begun() -> None:
    assert [step_index(RAMP, s) for s in (0, 299.9, 300, 10_000)] == [0, 0, 1, 1]
    assert step_index([{"at": 10, "in_flight": 1}], 9.9) == -1  # nothing before the first step
