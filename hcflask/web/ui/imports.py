"""Templates in and out of the pages as files: import an uploaded or pasted file (what
``hc template import`` does, with the same parser, validator and wording), download the
export, and the warnings every save of a template shows.

Import needs ``template.edit``; the form carries CSRF and the audit log records each
attempt like every other write (web/security.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Response, flash, g, redirect, url_for
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import SelectField, TextAreaField

from hcflask import documents
from hcflask.engine import actions
from hcflask.extensions import db
from hcflask.models import Template, ValidationError
from hcflask.web.auth import permission_required
from hcflask.web.ui import bp
from hcflask.web.ui.routes import _render

#: bytes of an uploaded or pasted file at most (a template with a large script is well below)
MAX_FILE = 2_000_000


class ImportForm(FlaskForm):
    file = FileField("Template file", description="a .yaml, .yml, .toml or .json file, as hc template export "
                                                  "writes it")
    text = TextAreaField("Or paste the document", description="name: my-test\nqueues: [site-a]\n"
                                                              "workload:\n  script: echo hc-ok")
    format = SelectField("Format", choices=["auto", "yaml", "toml", "json"],
                         description="auto: from the file name's suffix; pasted text: YAML (which reads JSON too)")


def flash_warnings(template: Template) -> None:
    """A saved template's queues that match nothing, as warnings beside the "saved" message."""
    for warning in actions.queue_warnings(template.to_document()):
        flash(f"Warning: {warning}", "warn")


def _source(form: ImportForm) -> tuple[str, str, str]:
    """The document's text, its format and what to call it in errors."""
    upload = form.file.data
    chosen = form.format.data or "auto"
    if upload is not None and getattr(upload, "filename", None):
        name = Path(upload.filename).name[:200]
        data = upload.read(MAX_FILE + 1)
        fmt = chosen if chosen != "auto" else documents.format_of(Path(name))
    elif (form.text.data or "").strip():
        name, data = "pasted text", (form.text.data or "").encode("utf-8")
        fmt = chosen if chosen != "auto" else "yaml"  # YAML reads JSON too
    else:
        raise ValidationError("file", "choose a file or paste a template document")
    if len(data) > MAX_FILE:
        raise ValidationError("file", f"{name}: larger than {MAX_FILE} bytes")
    try:
        return data.decode("utf-8"), fmt, name
    except UnicodeDecodeError as exc:
        raise ValidationError("file", f"{name}: not UTF-8 text (byte {exc.start})") from None


@bp.route("/templates/import", methods=["GET", "POST"])
@permission_required("template.edit")
def import_template() -> Any:
    form = ImportForm()
    errors: list[str] = []
    if form.validate_on_submit():
        try:
            text, fmt, name = _source(form)
            template, done = actions.import_template(documents.parse(text, fmt, name))
        except ValidationError as exc:
            db.session.rollback()
            errors = [f"{field}: {reason}" for field, reason in exc.errors]
            g.audit_reason = "; ".join(errors)
        else:
            flash(f"Template {template.name} {done}.", "ok")
            flash_warnings(template)
            return redirect(url_for("ui.template", template_id=template.id))
    elif form.is_submitted():
        errors = [f"{field}: {', '.join(map(str, problems))}" for field, problems in form.errors.items()]
    return _render("template_import.html", form=form, errors=errors), 400 if errors else 200


@bp.route("/templates/<int:template_id>/export.<any(yaml, toml, json):fmt>")
def export_template(template_id: int, fmt: str) -> Any:
    """The template as ``hc template export`` writes it, as a download."""
    row = db.get_or_404(Template, template_id)
    return Response(documents.dump(row.to_file(), fmt), mimetype=_MEDIA[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{row.name}.{fmt}"'})


_MEDIA = {"yaml": "application/yaml", "toml": "application/toml", "json": "application/json"}
