"""The template document validator: every error names its field."""
from __future__ import annotations

import pytest

from hcflask.models.spec import ValidationError, validate_template


def doc(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {"name": "t", "queues": ["local"], "workload": {"script": "echo hc-ok"}}
    base.update(overrides)
    return base


def test_defaults_are_filled_in() -> None:
    out = validate_template(doc())
    assert out["lifetime"] == 86400
    assert out["jobs_in_flight"] == 1
    assert out["workload"]["resources"] == {"cores": 1, "memory_mb": 0, "walltime": 600, "gpus": 0}
    assert out["workload"]["success"] == {"exit_code": 0, "must_match": [], "must_not_match": []}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "bad name!"}, "name"),
        ({"queues": []}, "queues"),
        ({"queues": ["ok", "no spaces"]}, "queues[1]"),
        ({"lifetime": "soon"}, "lifetime"),
        ({"jobs_in_flight": 0}, "jobs_in_flight"),
        ({"renew": "maybe"}, "renew"),
        ({"colour": "red"}, "colour"),
        ({"workload": {}}, "workload.script"),
        ({"workload": {"script": "x", "resources": {"cores": 0}}}, "workload.resources.cores"),
        ({"workload": {"script": "x", "resources": {"ram": 1}}}, "workload.resources.ram"),
        ({"workload": {"script": "x", "success": {"must_match": ["("]}}}, "workload.success.must_match[0]"),
        ({"workload": {"script": "x", "metrics": {"m": {"pattern": "(a"}}}}, "workload.metrics.m.pattern"),
        ({"workload": {"script": "x", "metrics": {"m": {"pattern": "(a)", "reference": {"lower": "2"}}}}},
         "workload.metrics.m.reference.lower"),
        ({"workload": {"image": "img.sif"}}, "workload.command"),
    ],
)
def test_errors_name_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_template(doc(**overrides))
    assert info.value.field == field
    assert info.value.reason


def test_queues_are_a_list_of_names_and_globs() -> None:
    assert validate_template(doc(queues=["a", "b*", "c"]))["queues"] == ["a", "b*", "c"]
    with pytest.raises(ValidationError, match="queues: must be a non-empty list"):
        validate_template(doc(queues="a, b* c"))
