"""Names and history (issue 25, item 1): names unique without regard to case, the reserved
``.deleted-N`` suffix, non-ASCII names refused in words that say why, short echoes; a deletion
that never leaves a half-deleted queue; renames that keep a queue's history.  Real local jobs,
the real CLI runner, the real pages and API."""
from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from hcflask.extensions import db
from hcflask.models import AuditEntry, Job, Queue, QueueClaim, Template, Test, utcnow
from hcflask.states import JobState
from tests.conftest import csrf_token
from tests.factories import make_queue, make_template, template_doc

AUTH = "Bearer {}"


def _api(client: FlaskClient, token: str, method: str, url: str, body: object = None) -> tuple[int, dict]:
    response = client.open(url, method=method, json=body, headers={"Authorization": AUTH.format(token)})
    return response.status_code, response.get_json()


def _with_history(name: str) -> Queue:
    """A queue with one finished job, so its deletion keeps the row (renamed, hidden)."""
    queue = make_queue(name)
    test = Test.from_template(make_template(f"t-{name}", queues=[name]), created_by="tests")
    db.session.add(test)
    db.session.flush()
    test.set_queues([queue])
    db.session.add(Job(test_id=test.id, queue_id=queue.id, backend="local", name=f"j-{name}",
                       state=JobState.SUCCEEDED.value, ended_at=utcnow()))
    db.session.commit()
    return queue


def test_reserved_suffix_is_refused_on_every_path(app: Flask, runner: FlaskCliRunner, admin_client: FlaskClient,
                                                  api_token: str) -> None:
    cli = runner.invoke(args=["queue", "add", "site-a.deleted-3", "--backend", "local"])
    assert cli.exit_code == 1 and "'.deleted-<number>' is reserved for deleted queues" in cli.output
    code, body = _api(admin_client, api_token, "POST", "/api/v1/queues", {"name": "site-a.DELETED-3",
                                                                           "backend": "local"})
    assert code == 400 and body["error"]["field"] == "name" and "reserved" in body["error"]["reason"]
    form = {"name": "site-a.deleted-3", "backend": "local", "options": "", "description": "",
            "autoexclusion": "y", "csrf_token": csrf_token(admin_client, "/queues/new")}
    page = admin_client.post("/queues/new", data=form)
    assert page.status_code == 400 and "reserved for deleted queues" in page.get_data(as_text=True)
    template = template_doc("t.deleted-1", ["q1"])
    code, body = _api(admin_client, api_token, "POST", "/api/v1/templates", template)
    assert code == 400 and "reserved" in body["error"]["reason"]
    with app.app_context():
        assert db.session.scalars(select(Queue)).all() == []


def test_a_deletion_that_would_clash_changes_nothing_anywhere(app: Flask, runner: FlaskCliRunner,
                                                              admin_client: FlaskClient, api_token: str) -> None:
    """The issue's reproduction: a queue already holds the name the deleted row would take.  Since the
    suffix is reserved that row can only come from before; it is written directly, as an old instance has it."""
    with app.app_context():
        queue = _with_history("site-a")
        db.session.add(Queue(name=f"site-a.deleted-{queue.id}", backend="local", options={}))
        db.session.commit()
        queue_id = queue.id

    def unchanged() -> None:
        with app.app_context():
            row = db.session.get(Queue, queue_id)
            assert (row.name, row.status, row.deleted_at, row.version) == ("site-a", "online", None, 0)
            assert db.session.scalars(select(QueueClaim)).all() == []

    cli = runner.invoke(args=["queue", "remove", "site-a", "--yes"])
    assert cli.exit_code == 1 and "Traceback" not in cli.output
    assert f"would be renamed site-a.deleted-{queue_id}" in cli.output and "rename that one first" in cli.output
    unchanged()
    code, body = _api(admin_client, api_token, "DELETE", "/api/v1/queues/site-a")
    assert code == 409 and body["error"]["field"] == "queue" and "rename that one first" in body["error"]["reason"]
    unchanged()
    form = {"csrf_token": csrf_token(admin_client, "/queues/site-a")}
    page = admin_client.post("/queues/site-a/delete", data=form, follow_redirects=True)
    assert page.status_code == 200 and "rename that one first" in page.get_data(as_text=True)
    unchanged()
    # the way out the message names works, and the deletion then goes through in one piece
    assert runner.invoke(args=["queue", "rename", f"site-a.deleted-{queue_id}", "old-a"]).exit_code == 0
    removed = runner.invoke(args=["queue", "remove", "site-a", "--yes"])
    assert removed.exit_code == 0 and f"history stays under site-a.deleted-{queue_id}" in removed.output
    with app.app_context():
        row = db.session.get(Queue, queue_id)
        assert row.deleted_at is not None and row.status == "offline" and row.name_key == row.name.lower()


def test_names_are_unique_without_regard_to_case(app: Flask, runner: FlaskCliRunner, admin_client: FlaskClient,
                                                 api_token: str) -> None:
    assert runner.invoke(args=["queue", "add", "site-a", "--backend", "local"]).exit_code == 0
    cli = runner.invoke(args=["queue", "add", "SITE-A", "--backend", "local"])
    assert cli.exit_code == 1 and "a queue named 'SITE-A' exists already (site-a: names are the same" in cli.output
    code, body = _api(admin_client, api_token, "POST", "/api/v1/queues", {"name": "Site-A", "backend": "local"})
    assert code == 409 and body["error"]["field"] == "name"
    with app.app_context():
        make_template("probe")
    code, body = _api(admin_client, api_token, "POST", "/api/v1/templates", template_doc("PROBE", ["site-a"]))
    assert code == 409 and "a template named 'PROBE' exists already" in body["error"]["reason"]
    with app.app_context():
        assert [q.name for q in db.session.scalars(select(Queue))] == ["site-a"]
        assert [t.name for t in db.session.scalars(select(Template))] == ["probe"]
        # the database keeps it so too, whatever path writes the row
        db.session.add(Queue(name="SITE-a", backend="local", options={}))
        try:
            db.session.commit()
            raise AssertionError("the unique name_key index let a second site-a in")
        except Exception as exc:  # noqa: BLE001 - the driver's IntegrityError
            assert "name_key" in str(exc)
            db.session.rollback()
    # a case change of a queue's own name is a rename, not a clash
    assert runner.invoke(args=["queue", "rename", "site-a", "SITE-A"]).exit_code == 0


def test_non_ascii_names_are_refused_in_words_that_say_why(runner: FlaskCliRunner, admin_client: FlaskClient,
                                                           api_token: str) -> None:
    cli = runner.invoke(args=["queue", "add", "sïte", "--backend", "local"])
    assert cli.exit_code == 1 and "'sïte' contains 'ï', which is not ASCII" in cli.output
    assert "ASCII letters (A-Z, a-z)" in cli.output
    code, body = _api(admin_client, api_token, "POST", "/api/v1/queues", {"name": "sïte", "backend": "local"})
    assert code == 400 and "which is not ASCII" in body["error"]["reason"]
    form = {"name": "sïte", "backend": "local", "options": "", "description": "", "autoexclusion": "y",
            "csrf_token": csrf_token(admin_client, "/queues/new")}
    assert "which is not ASCII" in admin_client.post("/queues/new", data=form).get_data(as_text=True)


def test_an_error_echoes_at_most_64_characters_of_a_bad_name(runner: FlaskCliRunner, admin_client: FlaskClient,
                                                             api_token: str) -> None:
    name = "a" * 5000
    cli = runner.invoke(args=["queue", "add", name, "--backend", "local"])
    assert cli.exit_code == 1 and "a" * 65 not in cli.output and "(5000 characters)" in cli.output
    code, body = _api(admin_client, api_token, "POST", "/api/v1/queues", {"name": name, "backend": "local"})
    assert code == 400 and "a" * 65 not in body["error"]["message"]
    removed = runner.invoke(args=["queue", "remove", "b" * 300, "--yes"])
    assert removed.exit_code == 1 and "b" * 65 not in removed.output


def test_rename_keeps_history_on_every_path(app: Flask, runner: FlaskCliRunner, admin_client: FlaskClient,
                                            api_token: str) -> None:
    with app.app_context():
        queue = _with_history("site-a")
        make_template("exact", queues=["site-a", "site-*"])
        queue_id = queue.id
    renamed = runner.invoke(args=["queue", "rename", "site-a", "site-b"])
    assert renamed.exit_code == 0 and "templates naming it changed too: exact" in renamed.output
    code, body = _api(admin_client, api_token, "PATCH", "/api/v1/queues/site-b", {"name": "site-c"})
    assert code == 200 and body["id"] == queue_id and body["name"] == "site-c"
    form = {"name": "site-d", "backend": "local", "options": "", "description": "",
            "autoexclusion": "y", "csrf_token": csrf_token(admin_client, "/queues/site-c/edit")}
    assert admin_client.post("/queues/site-c/edit", data=form).status_code == 302
    with app.app_context():
        row = db.session.get(Queue, queue_id)
        assert row.name == "site-d" and len(db.session.scalars(select(Job).where(Job.queue_id == queue_id)).all()) == 1
        assert db.session.scalar(select(Template).where(Template.name == "exact")).queues == ["site-d", "site-*"]
        test = db.session.scalar(select(Test))
        job_id = db.session.scalar(select(Job.id).where(Job.queue_id == queue_id))
    assert f'href="/jobs/{job_id}"' in admin_client.get("/queues/site-d").get_data(as_text=True)
    test_page = admin_client.get(f"/tests/{test.id}").get_data(as_text=True)
    assert "site-a (now site-d)" in test_page and f'href="/queues/id/{queue_id}"' in test_page
    code, body = _api(admin_client, api_token, "GET", f"/api/v1/tests/{test.id}")
    assert body["queue_refs"] == [{"id": queue_id, "name": "site-a", "current": "site-d", "deleted": False}]
    assert body["queues_jobs"]["site-a"]["completed"] == 1
    with app.app_context():  # each path audited, as every write is
        entries = {(e.via, e.action, e.target) for e in db.session.scalars(select(AuditEntry))}
    assert {("cli", "queue rename", "site-a site-b"), ("api", "PATCH /api/v1/queues/site-b", "{'key': 'site-b'}"),
            ("ui", "POST /queues/site-c/edit", "{'name': 'site-c'}")} <= entries
