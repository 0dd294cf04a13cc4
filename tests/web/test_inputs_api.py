"""The inputs and outputs sections through the JSON API: in its OpenAPI schema, saved, errors by the field."""
from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.factories import template_doc


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def body_schema(client: FlaskClient) -> dict[str, Any]:
    """The request schema of POST /templates in the served OpenAPI document."""
    doc = client.get("/api/v1/openapi.json").get_json()
    content = doc["paths"]["/templates"]["post"]["requestBody"]["content"]
    return content["application/json"]["schema"]["properties"]


def test_the_schema_documents_inputs_and_outputs(client: FlaskClient) -> None:
    props = body_schema(client)
    (inputs,) = [s for s in props["inputs"]["oneOf"] if s.get("type") == "object"]
    assert set(inputs["properties"]) == {"dataset", "files", "files_per_job", "access", "protocols"}
    assert inputs["properties"]["access"]["enum"] == ["copy", "direct"]
    assert inputs["properties"]["files_per_job"]["minimum"] == 1
    (outputs,) = [s for s in props["outputs"]["oneOf"] if s.get("type") == "object"]
    assert outputs["required"] == ["rse"] and outputs["properties"]["lifetime"]["minimum"] == 60


def test_a_template_with_inputs_through_the_api(client: FlaskClient, api_token: str) -> None:
    doc = template_doc("reads", inputs={"dataset": "mc23_13p6TeV:hc_test_input", "files_per_job": 2},
                       outputs={"rse": "SITE-A_SCRATCHDISK"})
    created = client.post("/api/v1/templates", json=doc, headers=auth(api_token))
    assert created.status_code == 201, created.get_json()
    got = client.get("/api/v1/templates/reads").get_json()
    assert got["inputs"] == {"dataset": "mc23_13p6TeV:hc_test_input", "files_per_job": 2, "access": "copy",
                             "protocols": ["root", "davs", "file"]}
    assert got["outputs"] == {"rse": "SITE-A_SCRATCHDISK", "lifetime": 3600}
    cases = [
        ({"dataset": "x:y", "files_per_job": 0}, None, "inputs.files_per_job"),
        ({"dataset": "no-scope"}, None, "inputs.dataset"),
        ({"files": ["relative/path"]}, None, "inputs.files[0]"),
        ({"dataset": "x:y", "protocols": ["gsiftp"]}, None, "inputs.protocols[0]"),
        (None, {"rse": "SITE-A", "lifetime": 10}, "outputs.lifetime"),
    ]
    for inputs, outputs, field in cases:
        bad = template_doc("bad", inputs=inputs, outputs=outputs)
        response = client.post("/api/v1/templates", json=bad, headers=auth(api_token))
        assert response.status_code == 400, (inputs, outputs)
        assert response.get_json()["error"]["field"] == field, response.get_json()
    assert client.get("/api/v1/templates/bad").status_code == 404, "nothing saved"
