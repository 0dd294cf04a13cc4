"""``hc template export`` round-trips: every template in tests/, the demo ones, the catalogue's
probes and the examples of docs/, imported, exported and imported again, give the same
document, with the fields in the schema's order and nothing that does not apply to the kind."""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from hcflask import documents
from hcflask.instance import DEMO_ROBOT_TEMPLATE, DEMO_TEMPLATE
from hcflask.models import validate_template
from hcflask.models.spec_export import ORDER, WORKLOAD_ORDER
from tests.factories import template_doc

ROOT = Path(__file__).resolve().parents[2]


def _from_tests() -> dict[str, tuple[str, str]]:
    """Template documents written as string constants in tests/ (name → (text, format))."""
    found: dict[str, tuple[str, str]] = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str) and "workload" in node.value.value):
                continue
            text = node.value.value
            fmt = "toml" if "[workload]" in text else "yaml"
            if _valid(text, fmt):  # not the broken ones tests give to see them refused
                found[f"{path.relative_to(ROOT)}:{getattr(node.targets[0], 'id', '?')}"] = (text, fmt)
    return found


def _valid(text: str, fmt: str) -> bool:
    from hcflask.models import ValidationError

    try:
        validate_template(documents.parse(text, fmt))
    except ValidationError:
        return False
    return True


def _from_docs() -> dict[str, tuple[str, str]]:
    """The YAML examples of docs/*.md that are whole templates."""
    found: dict[str, tuple[str, str]] = {}
    for path in sorted((ROOT / "docs").glob("*.md")):
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S)):
            if re.search(r"^name:", block, re.M) and re.search(r"^workload:", block, re.M):
                found[f"{path.name}#{i}"] = (block, "yaml")
    return found


def _from_code() -> dict[str, tuple[str, str]]:
    """The demo templates, the catalogue's probes and the factories' shapes (script, image, data)."""
    from hcflask.catalog import probes

    docs: dict[str, Any] = {
        "demo": DEMO_TEMPLATE, "demo-robot": DEMO_ROBOT_TEMPLATE, "factory": template_doc(),
        "factory-image": template_doc("img", workload={"image": "docker://alpine", "command": "echo hc-ok"}),
        "factory-data": template_doc("data", inputs={"files": ["/data/a", "root://x//b"], "files_per_job": 2},
                                     outputs={"rse": "SITE-A_SCRATCHDISK"}),
        "factory-stress": template_doc("st", kind="stress", jobs_in_flight=1, stress={
            "ramp": [{"at": 0, "in_flight": 2}, {"at": 60, "in_flight": 5}], "max_jobs": 20,
            "abort_fail_rate": 0.5}),
    }
    found = {name: (documents.dump(doc, "json"), "json") for name, doc in docs.items()}
    found.update({f"probe:{p.name}": (p.text(), "yaml") for p in probes()})
    return found


CASES = {**_from_tests(), **_from_docs(), **_from_code()}


def test_the_cases_cover_what_the_issue_names() -> None:
    """The demo templates, a stress one, a container one and the files of tests/ are all here."""
    assert {"demo", "demo-robot", "factory-stress", "factory-image"} <= set(CASES)
    assert any(name.startswith("tests/") for name in CASES) and any(name.startswith("probe:") for name in CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_round_trips(app: Flask, runner: FlaskCliRunner, tmp_path: Path, case: str) -> None:
    for fmt in documents.FORMATS:
        _round_trip(app, runner, tmp_path, case, fmt)


def _round_trip(app: Flask, runner: FlaskCliRunner, tmp_path: Path, case: str, fmt: str) -> None:
    text, source_fmt = CASES[case]
    source = tmp_path / f"in.{source_fmt}"
    source.write_text(text)
    original = documents.load(source)
    imported = runner.invoke(args=["template", "import", str(source)])
    assert imported.exit_code == 0, imported.output
    name = original["name"]
    out = tmp_path / f"out.{fmt}"
    assert runner.invoke(args=["template", "export", name, "-o", str(out)]).exit_code == 0
    exported = documents.load(out)
    # the same template: what the export says is what the file said
    with app.app_context():
        assert validate_template(exported) == validate_template(original)
    # in the schema's order, and only what applies
    assert list(exported) == [key for key in ORDER if key in exported]
    assert list(exported["workload"]) == [key for key in WORKLOAD_ORDER if key in exported["workload"]]
    assert ("script" in exported["workload"]) != ("image" in exported["workload"])
    assert "command" not in exported["workload"] or "image" in exported["workload"]
    if exported.get("kind") == "stress":
        assert not {"jobs_in_flight", "max_jobs", "max_running", "autoexclusion", "renew"} & set(exported)
    else:
        assert "stress" not in exported
    # and importing the export gives it back byte for byte
    assert runner.invoke(args=["template", "import", str(out)]).exit_code == 0
    again = runner.invoke(args=["template", "export", name, "--format", fmt])
    assert again.output == out.read_text()


def test_stress_template_rejects_top_level_in_flight_numbers(app: Flask) -> None:
    """Numbers a stress test would not read are refused, not silently kept (nor exported)."""
    from hcflask.models import ValidationError

    doc = template_doc("st", kind="stress", jobs_in_flight=5, max_jobs=3, stress={
        "ramp": [{"at": 0, "in_flight": 2}], "max_jobs": 4})
    with app.app_context(), pytest.raises(ValidationError) as caught:
        validate_template(doc)
    assert dict(caught.value.errors) == {"jobs_in_flight": "does not apply to kind: stress (use stress.ramp)",
                                         "max_jobs": "does not apply to kind: stress (use stress.max_jobs)"}


def test_list_shows_no_in_flight_for_a_stress_template(runner: FlaskCliRunner, tmp_path: Path) -> None:
    path = tmp_path / "st.json"
    path.write_text(documents.dump(template_doc("st", kind="stress", stress={
        "ramp": [{"at": 0, "in_flight": 2}], "max_jobs": 4}), "json"))
    assert runner.invoke(args=["template", "import", str(path)]).exit_code == 0
    row = next(line for line in runner.invoke(args=["template", "list"]).output.splitlines() if " st " in line)
    assert row.split()[4] == "ramp", row
