"""Forms of the UI.  They only collect input: the template document they
build is checked by the same validator as files and the API, and its
errors are put back on the matching form field."""
from __future__ import annotations

from typing import Any

import yaml
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.validators import Optional

from hcflask.backends import BACKEND_NAMES
from hcflask.models import ValidationError, messages
from hcflask.models.spec import from_text
from hcflask.states import QueueStatus

#: dotted document field → form field
FIELD_OF = {
    "name": "name", "description": "description", "queues": "queues", "lifetime": "lifetime",
    "jobs_in_flight": "jobs_in_flight", "max_jobs": "max_jobs", "max_running": "max_running",
    "workload.script": "script", "workload.image": "image", "workload.command": "command",
    "workload.resources.cores": "cores", "workload.resources.memory_mb": "memory_mb",
    "workload.resources.walltime": "walltime", "workload.resources.gpus": "gpus",
    "workload.success.exit_code": "exit_code", "workload.success.must_match": "must_match",
    "workload.success.must_not_match": "must_not_match", "workload.metrics": "metrics",
    "kind": "stress", "stress": "stress", "inputs": "inputs",
    "outputs": "outputs",
}


def _lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class WholeField(StringField):
    """A number field that checks nothing itself: what was typed goes to the one validator
    (:mod:`hcflask.models.spec`), a whole number as a number, anything else as typed, so
    ``abc`` gets the one message the API and a file get ("must be a whole number, got 'abc'"),
    not WTForms' own words beside it."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        if valuelist:
            text = str(valuelist[0]).strip()
            if not text:  # an emptied field means the default, as an absent key does in a file
                self.data = self.default
                return
            self.data = from_text(text)


class ShowsErrors(FlaskForm):
    """A form that shows a :class:`ValidationError` next to the field it names.

    ``FIELD_OF`` maps a document field (or the start of a dotted one) to the
    form field; anything else is shown above the form.
    """

    FIELD_OF: dict[str, str] = {}

    def add_error(self, exc: ValidationError) -> None:
        """The first problem of each field next to it, in the validator's words (one error per field:
        a second one about the same field is usually a consequence of the first); a problem inside a
        field (``options.slots`` in the options box) names its part."""
        for dotted, reason in exc.errors:
            field = dotted.split("[")[0]
            key = field if field in self.FIELD_OF else next((k for k in self.FIELD_OF if field.startswith(k + ".")),
                                                            None)
            if key is None:
                self.form_errors.append(f"{dotted}: {reason}")
                continue
            target = getattr(self, self.FIELD_OF[key])
            if not target.errors:
                target.errors = [reason if dotted == key else f"{dotted}: {reason}"]


class TemplateForm(ShowsErrors):
    FIELD_OF = FIELD_OF

    name = StringField("Name")
    description = StringField("Description")
    queues = StringField("Queues", description="names or glob patterns, separated by spaces or commas")
    lifetime = WholeField("Lifetime (s)", default=86400)
    jobs_in_flight = WholeField("Jobs in flight per queue", default=1)
    max_jobs = WholeField("Max jobs per queue (0 = unlimited)", default=0)
    max_running = WholeField("Max in flight per test (0 = unlimited)", default=0)
    autoexclusion = BooleanField("Drives auto-exclusion")
    renew = BooleanField("Renew (start a new test when one ends)")
    script = TextAreaField("Script", description="bash; HC_QUEUE, HC_TEST_ID, HC_JOB_ID, HC_TEMPLATE are set")
    image = StringField("Container image", description="optional: run the command in this image")
    command = StringField("Container command")
    cores = WholeField("Cores", default=1)
    memory_mb = WholeField("Memory (MB, 0 = default)", default=0)
    walltime = WholeField("Walltime (s)", default=600)
    gpus = WholeField("GPUs", default=0)
    exit_code = WholeField("Expected exit code", default=0)
    must_match = TextAreaField("Output must match", description="one regular expression per line")
    must_not_match = TextAreaField("Output must not match", description="one regular expression per line")
    metrics = TextAreaField("Metrics (YAML)", description="name: {pattern: 'x=(?P<name>[0-9.]+)', unit: s}")
    stress = TextAreaField("Stress test (YAML; empty: a functional test)",
                           description="ramp: [{at: 0, in_flight: 2}, {at: 300, in_flight: 10}]\n"
                                       "max_jobs: 200\nabort_fail_rate: 0.5")
    inputs = TextAreaField("Input data (YAML; empty: the jobs read none)",
                           description="dataset: 'scope:name'   # or files: [root://host//path, /gpfs/f]\n"
                                       "files_per_job: 2\naccess: copy   # or direct\nprotocols: [root, davs, file]")
    outputs = TextAreaField("Stage-out (YAML; empty: the jobs write nothing back)",
                            description="rse: SITE-A_SCRATCHDISK\nlifetime: 3600   # seconds the rule lives\n"
                                        "scope: hc_outputs   # optional")

    def fill(self, doc: dict[str, Any]) -> None:
        """Put a template document into the form."""
        workload = doc["workload"]
        for key in ("name", "description", "lifetime", "jobs_in_flight", "max_jobs", "max_running",
                    "autoexclusion", "renew"):
            getattr(self, key).data = doc[key]
        self.queues.data = " ".join(doc["queues"])
        for key in ("script", "image", "command"):
            getattr(self, key).data = workload.get(key, "")
        for key, value in workload["resources"].items():
            getattr(self, key).data = value
        success = workload["success"]
        self.exit_code.data = success["exit_code"]
        self.must_match.data = "\n".join(success["must_match"])
        self.must_not_match.data = "\n".join(success["must_not_match"])
        metrics = workload.get("metrics") or {}
        self.metrics.data = yaml.safe_dump(metrics, sort_keys=False) if metrics else ""
        self.stress.data = yaml.safe_dump(doc["stress"], sort_keys=False) if doc.get("stress") else ""
        self.inputs.data = yaml.safe_dump(doc["inputs"], sort_keys=False) if doc.get("inputs") else ""
        self.outputs.data = yaml.safe_dump(doc["outputs"], sort_keys=False) if doc.get("outputs") else ""

    def document(self) -> dict[str, Any]:
        """The template document from the form (validated later)."""
        try:
            metrics = yaml.safe_load(self.metrics.data or "") or {}
        except yaml.YAMLError as exc:
            raise ValidationError("workload.metrics", f"not valid YAML: {' '.join(str(exc).split())}") from None
        try:
            stress = yaml.safe_load(self.stress.data or "") or None
        except yaml.YAMLError as exc:
            raise ValidationError("stress", f"not valid YAML: {' '.join(str(exc).split())}") from None
        try:
            inputs = yaml.safe_load(self.inputs.data or "") or None
        except yaml.YAMLError as exc:
            raise ValidationError("inputs", f"not valid YAML: {' '.join(str(exc).split())}") from None
        try:
            outputs = yaml.safe_load(self.outputs.data or "") or None
        except yaml.YAMLError as exc:
            raise ValidationError("outputs", f"not valid YAML: {' '.join(str(exc).split())}") from None
        return {
            "kind": "stress" if stress else "functional", "stress": stress, "inputs": inputs, "outputs": outputs,
            "name": (self.name.data or "").strip(), "description": self.description.data or "",
            "queues": (self.queues.data or "").replace(",", " ").split(), "lifetime": self.lifetime.data,
            "jobs_in_flight": self.jobs_in_flight.data, "max_jobs": self.max_jobs.data,
            "max_running": self.max_running.data, "autoexclusion": self.autoexclusion.data,
            "renew": self.renew.data,
            "workload": {
                # browsers send textareas with CRLF line ends; bash reads "done\r" as a word, not a keyword
                "script": (self.script.data or "").replace("\r\n", "\n"), "image": self.image.data or "",
                "command": self.command.data or "",
                "resources": {"cores": self.cores.data, "memory_mb": self.memory_mb.data,
                              "walltime": self.walltime.data, "gpus": self.gpus.data},
                "success": {"exit_code": self.exit_code.data, "must_match": _lines(self.must_match.data),
                            "must_not_match": _lines(self.must_not_match.data)},
                "metrics": metrics,
            },
        }


class QueueForm(ShowsErrors):
    FIELD_OF = {"name": "name", "backend": "backend", "options": "options", "description": "description"}

    name = StringField("Name")
    backend = SelectField("Backend", choices=list(BACKEND_NAMES),
                          description="only the backends usable here are offered")
    options = TextAreaField("Backend options (YAML)",
                            description=f"one option: value per line, e.g. {messages.OPTIONS_EXAMPLE}")
    description = StringField("Description")
    autoexclusion = BooleanField("Auto-exclusion", default=True)

    def options_dict(self) -> dict[str, Any]:
        try:
            data = yaml.safe_load(self.options.data or "") or {}
        except yaml.YAMLError as exc:
            raise ValidationError("options", f"not valid YAML: {' '.join(str(exc).split())}") from None
        if not isinstance(data, dict):
            raise ValidationError("options", messages.options_shape(data))
        return data

    def fill(self, queue: Any) -> None:
        """Put a queue into the form (to edit it)."""
        self.name.data, self.backend.data = queue.name, queue.backend
        self.options.data = yaml.safe_dump(queue.options, sort_keys=True) if queue.options else ""
        self.description.data, self.autoexclusion.data = queue.description, queue.autoexclusion


class QueueStatusForm(FlaskForm):
    # the status owner checks the value (and names the field) for the UI, the API and the CLI alike
    status = SelectField("Status", choices=[s.value for s in QueueStatus if s != QueueStatus.EXCLUDED],
                         validate_choice=False)
    reason = StringField("Reason", validators=[Optional()])


class ActionForm(FlaskForm):
    """A button: nothing but the CSRF token."""
