"""Success rules and metric extraction (pure functions)."""
from __future__ import annotations

from hcflask.backends.base import Status
from hcflask.engine.jobs.judge import extract_metrics, judge
from hcflask.models.spec import validate_workload
from hcflask.states import JobState

WORKLOAD = validate_workload({
    "script": "true",
    "resources": {"walltime": 600},
    "success": {"exit_code": 0, "must_match": ["hc-ok"], "must_not_match": ["ERROR"]},
    "metrics": {
        "value": {"pattern": r"value=(?P<value>[0-9.]+)", "unit": "s", "reference": {"lower": 10, "upper": 50}},
        "other": {"pattern": r"other=([0-9]+)"},
    },
})
DONE = Status(JobState.SUCCEEDED, "exited")


def result(code: int = 0, **extra: object) -> dict[str, object]:
    return {"exit_code": code, "start": 1, "end": 2, "host": "n1", **extra}


def test_success_with_metrics() -> None:
    verdict = judge(WORKLOAD, DONE, result(), "hc-ok value=12.5 other=3\n", "")
    assert verdict.state is JobState.SUCCEEDED
    assert verdict.metrics == {"value": 12.5, "other": 3.0}
    assert verdict.reason == ""


def test_exit_code_reason_uses_last_stderr_line() -> None:
    verdict = judge(WORKLOAD, Status(JobState.FAILED, "exited"), result(3), "hc-ok\n", "warn\ndisk full\n\n")
    assert verdict.state is JobState.FAILED
    assert verdict.reason == "exit 3: disk full"
    assert verdict.exit_code == 3


def test_missing_required_pattern() -> None:
    verdict = judge(WORKLOAD, DONE, result(), "all good\n", "")
    assert verdict.state is JobState.FAILED
    assert "hc-ok" in verdict.reason


def test_forbidden_pattern_quotes_the_line() -> None:
    verdict = judge(WORKLOAD, DONE, result(), "hc-ok\nan ERROR happened here\n", "")
    assert verdict.state is JobState.FAILED
    assert "an ERROR happened here" in verdict.reason


def test_metric_out_of_reference_fails_as_performance() -> None:
    verdict = judge(WORKLOAD, DONE, result(), "hc-ok value=70\n", "")
    assert verdict.state is JobState.FAILED
    assert verdict.reason.startswith("performance: value=70 s above upper limit 50")
    low = judge(WORKLOAD, DONE, result(), "hc-ok value=5\n", "")
    assert "below lower limit 10" in low.reason


def test_timeout_reason() -> None:
    verdict = judge(WORKLOAD, Status(JobState.FAILED, "exited"), result(124, timeout=True), "", "")
    assert verdict.reason == "timeout after 00:10:00"


def test_backend_reason_wins_over_output() -> None:
    status = Status(JobState.FAILED, "NODE_FAIL", "node failure on node42")
    verdict = judge(WORKLOAD, status, None, "hc-ok value=12\n", "")
    assert (verdict.state, verdict.reason) == (JobState.FAILED, "node failure on node42")


def test_cancelled_and_lost_keep_their_state() -> None:
    assert judge(WORKLOAD, Status(JobState.CANCELLED, "cancelled", "cancelled by admin"), None, "", "").state \
        is JobState.CANCELLED
    assert judge(WORKLOAD, Status(JobState.LOST, "unknown"), None, "", "").state is JobState.LOST


def test_last_metric_match_wins_and_bad_numbers_are_skipped() -> None:
    metrics = {"value": {"pattern": r"value=(?P<value>\S+)"}}
    assert extract_metrics(metrics, "value=1\nvalue=2\n") == {"value": 2.0}
    assert extract_metrics(metrics, "value=abc\n") == {}


def test_output_kept_elsewhere_is_judged_by_exit_code_and_says_so() -> None:
    panda = result(source="panda")
    verdict = judge(WORKLOAD, DONE, panda, "", "")
    assert verdict.state is JobState.SUCCEEDED
    assert verdict.reason == "output rules not checked: the output stays with panda"
    failed = judge(WORKLOAD, Status(JobState.FAILED, "failed"), {**panda, "exit_code": 2}, "", "")
    assert (failed.state, failed.reason) == (JobState.FAILED, "exit 2")
    # with local output the rules apply as usual
    assert judge(WORKLOAD, DONE, panda, "no marker\n", "").state is JobState.FAILED
