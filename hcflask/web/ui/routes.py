"""The pages.  Each view reads, or calls one engine action, and renders."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from hcflask import documents
from hcflask.backends import jobscript
from hcflask.catalog import commission
from hcflask.engine import actions
from hcflask.engine.jobs import stress
from hcflask.engine.status import SOURCES, active_claims
from hcflask.extensions import db
from hcflask.models import BackendHealth, Job, Queue, QueueEvent, Template, Test, ValidationError, validate_template
from hcflask.states import JobState, QueueStatus, TestState
from hcflask.web import queries
from hcflask.web.auth import permission_required
from hcflask.web.ui import bp
from hcflask.web.ui.forms import ActionForm, QueueStatusForm, TemplateForm

ACTIVE = [TestState.SCHEDULED.value, TestState.RUNNING.value]


def _actor() -> str:
    """The signed-in person's one name (the same in the audit log, events and tests)."""
    return str(current_user.username)


def _page_args() -> tuple[int, int]:
    """``?page=`` checked as the API checks it (a 400 naming it); empty means the first."""
    page = queries.int_arg(request.args, "page", 1) if request.args.get("page") else 1
    return page, current_app.config["JOBS_PER_PAGE"]


def _outages() -> list[BackendHealth]:
    return list(db.session.scalars(select(BackendHealth).where(BackendHealth.available.is_(False))))


def _alerts() -> list[Any]:
    """Open alerts, shown on every page: at 3 a.m. they must not be missed.

    Backend alerts are left out: the backend outage banner says it already.
    """
    from hcflask.engine.robot.alerts import open_alerts

    return [a for a in open_alerts() if a.kind != "backend"]


def _render(template: str, partial: str | None = None, /, **context: Any) -> Any:
    """Full page, or only its auto-refreshing part for htmx requests."""
    if partial and request.headers.get("HX-Request"):
        return render_template(partial, **context)
    return render_template(template, outages=_outages(), alerts=_alerts(), **context)


@bp.route("/")
def home() -> Any:
    tests = list(db.session.scalars(select(Test).where(Test.state.in_(ACTIVE)).order_by(Test.id.desc())))
    recent = list(db.session.scalars(
        select(Test).where(Test.state.not_in(ACTIVE)).order_by(Test.id.desc()).limit(10)
    ))
    counts = queries.counts_by_test([t.id for t in tests + recent])
    queues = list(db.session.scalars(Queue.live().order_by(Queue.name)))
    excluded = [q for q in queues if q.status == QueueStatus.EXCLUDED.value]
    offline = [q for q in queues if q.status == QueueStatus.OFFLINE.value]
    return _render("home.html", "_home_tables.html", tests=tests, recent=recent, counts=counts,
                   excluded=excluded, offline=offline, queue_count=len(queues))


@bp.route("/tests")
def tests() -> Any:
    page, per_page = _page_args()
    result = queries.paginate(queries.tests_query(request.args), page, per_page)
    counts = queries.counts_by_test([t.id for t in result.items])
    return _render("tests.html", result=result, counts=counts, state=request.args.get("state", ""))


@bp.route("/tests/<int:test_id>")
def test(test_id: int) -> Any:
    test = db.get_or_404(Test, test_id)
    page, per_page = _page_args()
    args = {k: v for k, v in request.args.items() if k in ("state", "queue") and v}
    try:
        jobs = queries.paginate(queries.jobs_query({**args, "test": str(test.id)}), page, per_page)
    except ValidationError as exc:
        flash(str(exc), "error")
        args = {}
        jobs = queries.paginate(queries.jobs_query({"test": str(test.id)}), page, per_page)
    per_queue = queries.counts_by_queue(test.id)
    total = queries.counts_by_test([test.id])[test.id]
    snapshot = documents.dump(test.snapshot, "yaml")
    return _render("test.html", "_test_live.html", test=test, jobs=jobs, per_queue=per_queue, total=total,
                   snapshot=snapshot, filters=args, states=[s.value for s in JobState], form=ActionForm(),
                   progress=stress.progress(test))


@bp.route("/tests/<int:test_id>/cancel", methods=["POST"])
@permission_required("test.cancel")
def cancel_test(test_id: int) -> Any:
    test = db.get_or_404(Test, test_id)
    if ActionForm().validate_on_submit():
        try:
            actions.cancel_test(test, _actor())
            flash(f"Test {test.id} cancelled; its pending jobs are cancelled within a tick.", "ok")
        except ValidationError as exc:
            flash(str(exc), "error")
    return redirect(url_for("ui.test", test_id=test.id))


@bp.route("/templates")
def templates() -> Any:
    rows = list(db.session.scalars(select(Template).order_by(Template.active.desc(), Template.name)))
    return _render("templates.html", templates=rows)


@bp.route("/templates/<int:template_id>")
def template(template_id: int) -> Any:
    row = db.get_or_404(Template, template_id)
    tests = list(row.tests.limit(50))
    counts = queries.counts_by_test([t.id for t in tests])
    document = documents.dump(row.to_file(), "yaml")
    return _render("template.html", template=row, tests=tests, counts=counts, document=document,
                   form=ActionForm())


def _template_form(row: Template | None, form: TemplateForm, title: str) -> Any:
    """One submit shows every problem: the form's own checks and the document validator's together."""
    if form.is_submitted():
        form_ok = form.validate()
        try:
            document = form.document()
            validate_template(document)
            if form_ok:
                saved = actions.save_template(document, row)
                flash(f"Template {saved.name} saved.", "ok")
                from hcflask.web.ui.imports import flash_warnings

                flash_warnings(saved)
                return redirect(url_for("ui.template", template_id=saved.id))
        except ValidationError as exc:
            db.session.rollback()
            form.add_error(exc)
    return _render("template_form.html", form=form, title=title, template=row), 200 if not form.errors else 400


@bp.route("/templates/new", methods=["GET", "POST"])
@permission_required("template.edit")
def new_template() -> Any:
    form = TemplateForm()
    if request.method == "GET":
        form.script.data = 'echo "hc-ok value=42"'
        form.must_match.data = "hc-ok"
        form.metrics.data = "value: {pattern: 'value=(?P<value>[0-9.]+)', unit: ''}\n"
    return _template_form(None, form, "New template")


@bp.route("/templates/<int:template_id>/edit", methods=["GET", "POST"])
@permission_required("template.edit")
def edit_template(template_id: int) -> Any:
    row = db.get_or_404(Template, template_id)
    form = TemplateForm()
    if request.method == "GET":
        form.fill(row.to_document())
    return _template_form(row, form, f"Edit template {row.name}")


@bp.route("/templates/<int:template_id>/clone", methods=["GET"])
@permission_required("template.edit")
def clone_template(template_id: int) -> Any:
    row = db.get_or_404(Template, template_id)
    form = TemplateForm()
    form.fill({**row.to_document(), "name": f"{row.name}-copy"})
    return _render("template_form.html", form=form, title=f"Clone of {row.name}", template=None,
                   action=url_for("ui.new_template"))


@bp.route("/templates/<int:template_id>/active", methods=["POST"])
@permission_required("template.edit")
def toggle_template(template_id: int) -> Any:
    row = db.get_or_404(Template, template_id)
    if ActionForm().validate_on_submit():
        actions.set_template_active(row, not row.active)
        flash(f"Template {row.name} {'activated' if row.active else 'deactivated'}.", "ok")
    return redirect(url_for("ui.template", template_id=row.id))


@bp.route("/templates/<int:template_id>/start", methods=["POST"])
@permission_required("test.start")
def start_test(template_id: int) -> Any:
    row = db.get_or_404(Template, template_id)
    if ActionForm().validate_on_submit():
        try:
            test = actions.start_test(row, _actor(), refuse_unmatched=True)
        except ValidationError as exc:
            flash(str(exc), "error")
        else:
            flash(f"Test {test.id} scheduled; it starts at the next core tick.", "ok")
            return redirect(url_for("ui.test", test_id=test.id))
    return redirect(url_for("ui.template", template_id=row.id))


@bp.route("/queues")
def queues() -> Any:
    rows = list(db.session.scalars(Queue.live().order_by(Queue.name)))
    in_flight = dict(db.session.execute(
        select(Job.queue_id, func.count()).where(Job.state.in_(
            [JobState.PENDING.value, JobState.SUBMITTED.value, JobState.QUEUED.value, JobState.RUNNING.value]
        )).group_by(Job.queue_id)
    ).all())
    return _render("queues.html", queues=rows, in_flight=in_flight)


@bp.route("/queues/id/<int:queue_id>")
def queue_by_id(queue_id: int) -> Any:
    """A queue by id, the link pages about history use: it follows a rename, and a deleted queue's
    leads to its kept row, never to a new queue that took its name."""
    row = db.get_or_404(Queue, queue_id)
    return redirect(url_for("ui.queue", name=row.name))


@bp.route("/queues/<name>")
def queue(name: str) -> Any:
    row = db.first_or_404(select(Queue).where(Queue.name == name))
    page, per_page = _page_args()
    jobs = queries.paginate(select(Job).where(Job.queue_id == row.id).order_by(Job.id.desc()), page, per_page)
    events = list(db.session.scalars(
        select(QueueEvent).where(QueueEvent.queue_id == row.id).order_by(QueueEvent.id.desc()).limit(100)
    ))
    health = db.session.scalar(select(BackendHealth).where(BackendHealth.backend == row.backend)
                               .order_by(BackendHealth.available))
    form = QueueStatusForm(status=row.status)
    claims = sorted(active_claims([row.id]).get(row.id, []), key=lambda c: SOURCES.index(c.source))
    return _render("queue.html", queue=row, jobs=jobs, events=events, health=health, form=form, claims=claims,
                   commissionings=commission.latest(row))


@bp.route("/queues/<name>/status", methods=["POST"])
@permission_required("queue.status")
def queue_status(name: str) -> Any:
    row = db.first_or_404(select(Queue).where(Queue.name == name))
    form = QueueStatusForm()
    if form.validate_on_submit():
        try:
            actions.set_queue_status(row, form.status.data or "", _actor(), form.reason.data or "")
            flash(f"Queue {row.name} is now {row.status}.", "ok")
        except ValidationError as exc:
            flash(f"{exc.field}: {exc.reason}", "error")
    else:
        flash("; ".join(f"{k}: {', '.join(v)}" for k, v in form.errors.items()), "error")
    return redirect(url_for("ui.queue", name=row.name))


@bp.route("/jobs/<int:job_id>")
def job(job_id: int) -> Any:
    row = db.get_or_404(Job, job_id)
    limit = current_app.config["JOBS_OUTPUT_LIMIT"]
    workdir = Path(row.workdir) if row.workdir else None
    output = {
        name: jobscript.tail(workdir / name, limit) if workdir else ""
        for name in (jobscript.STDOUT, jobscript.STDERR)
    }
    sizes = {name: (workdir / name).stat().st_size if workdir and (workdir / name).exists() else 0
             for name in output}
    result = (jobscript.read_result(workdir) if workdir else None) or {}
    cut = {name: result.get(f"{name}_cut") is True for name in output}
    return _render("job.html", job=row, output=output, sizes=sizes, limit=limit, cut=cut,
                   cap=current_app.config["JOBS_OUTPUT_CAP"])
