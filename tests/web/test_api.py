"""The JSON API: lists with filters and pages, token-guarded writes, errors naming the field."""
from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.factories import make_queue, template_doc


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_writes_need_a_token(client: FlaskClient) -> None:
    response = client.post("/api/v1/queues", json={"name": "x", "backend": "local"})
    assert response.status_code == 401
    assert "token" in response.get_json()["error"]["reason"]
    bad = client.post("/api/v1/queues", json={"name": "x", "backend": "local"}, headers=auth("hct_nope"))
    assert bad.status_code == 401


def test_create_and_list_queues(client: FlaskClient, api_token: str) -> None:
    response = client.post("/api/v1/queues", json={"name": "q1", "backend": "local", "options": {"slots": 2}},
                           headers=auth(api_token))
    assert response.status_code == 201
    assert response.get_json()["options"] == {"slots": 2}
    listed = client.get("/api/v1/queues").get_json()
    assert listed["total"] == 1 and listed["items"][0]["name"] == "q1"
    assert client.get("/api/v1/queues/q1").get_json()["backend"] == "local"


def test_errors_name_the_field(client: FlaskClient, api_token: str) -> None:
    cases = [
        ("/api/v1/queues", {"name": "q", "backend": "nosuch"}, "backend"),
        ("/api/v1/queues", {"name": "q", "backend": "local", "options": {"slots": 0}}, "options.slots"),
        ("/api/v1/queues", {"name": "q", "backend": "local", "options": {"colour": 1}}, "options.colour"),
        ("/api/v1/templates", {**template_doc(), "lifetime": -1}, "lifetime"),
        ("/api/v1/templates", {**template_doc(), "workload": {"script": "x", "resources": {"cores": "many"}}},
         "workload.resources.cores"),
        ("/api/v1/tests", {}, "template"),
        ("/api/v1/tests", {"template": "nope"}, "template"),
    ]
    for url, body, field in cases:
        response = client.post(url, json=body, headers=auth(api_token))
        assert response.status_code == (409 if body == {"template": "nope"} else 400), (url, body)
        error = response.get_json()["error"]
        assert error["field"] == field, (body, error)
        assert error["reason"]
    response = client.post("/api/v1/templates", data="not json", headers=auth(api_token))
    assert response.get_json()["error"]["field"] == "body"
    assert client.get("/api/v1/jobs?state=bogus").get_json()["error"]["field"] == "state"
    assert client.get("/api/v1/jobs?per_page=9999").get_json()["error"]["field"] == "per_page"


def test_template_test_and_cancel_flow(client: FlaskClient, api_token: str, app: Flask) -> None:
    with app.app_context():
        make_queue("q1")
    created = client.post("/api/v1/templates", json=template_doc("api-t"), headers=auth(api_token))
    assert created.status_code == 201
    template_id = created.get_json()["id"]
    again = client.post("/api/v1/templates", json=template_doc("api-t"), headers=auth(api_token))
    assert again.get_json()["error"]["field"] == "name"
    updated = client.put(f"/api/v1/templates/{template_id}", json={**template_doc("api-t"), "jobs_in_flight": 3},
                         headers=auth(api_token))
    assert updated.get_json()["jobs_in_flight"] == 3
    test = client.post("/api/v1/tests", json={"template": "api-t"}, headers=auth(api_token))
    assert test.status_code == 201
    test_id = test.get_json()["id"]
    assert test.get_json()["snapshot"]["jobs_in_flight"] == 3
    listed = client.get("/api/v1/tests?state=scheduled&template=api-t").get_json()
    assert [t["id"] for t in listed["items"]] == [test_id]
    assert listed["items"][0]["jobs"]["total"] == 0
    cancelled = client.post(f"/api/v1/tests/{test_id}/cancel", json={"reason": "typo"}, headers=auth(api_token))
    assert cancelled.get_json()["state"] == "cancelled"
    assert cancelled.get_json()["note"] == "typo"
    twice = client.post(f"/api/v1/tests/{test_id}/cancel", headers=auth(api_token))
    assert twice.get_json()["error"]["field"] == "state"


def test_pagination_and_unknown_things(client: FlaskClient, api_token: str) -> None:
    for i in range(5):
        client.post("/api/v1/queues", json={"name": f"q{i}", "backend": "local"}, headers=auth(api_token))
    page = client.get("/api/v1/queues?per_page=2&page=3").get_json()
    assert page["total"] == 5 and page["pages"] == 3 and [q["name"] for q in page["items"]] == ["q4"]
    assert client.get("/api/v1/queues/nope").status_code == 404
    assert client.get("/api/v1/nothing").get_json()["error"]["status"] == 404


def test_openapi_lists_every_endpoint(client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    for path in ["/queues", "/templates", "/tests", "/jobs", "/tests/{id}/cancel", "/queues/{key}"]:
        assert path in doc["paths"], path
    assert "post" in doc["paths"]["/tests"]
