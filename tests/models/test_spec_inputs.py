"""The ``inputs`` section and the queue option ``rse``: normalised, or refused naming the field."""
from __future__ import annotations

from typing import Any

import pytest

from hcflask.backends import OptionError, backend_class
from hcflask.models.spec import ValidationError, validate_template


def doc(inputs: Any) -> dict[str, Any]:
    return {"name": "t", "queues": ["q"], "workload": {"script": "true"}, "inputs": inputs}


def test_a_dataset_gets_the_defaults() -> None:
    out = validate_template(doc({"dataset": "mc23_13p6TeV:hc_test_input"}))["inputs"]
    assert out == {"dataset": "mc23_13p6TeV:hc_test_input", "access": "copy", "files_per_job": 1,
                   "protocols": ["root", "davs", "file"]}


def test_no_inputs_is_none() -> None:
    assert validate_template({**doc(None)})["inputs"] is None


def test_plain_files() -> None:
    out = validate_template(doc({"files": ["root://eos.example.org//eos/f1", "/gpfs/hc/f2"], "files_per_job": 2,
                                 "access": "direct", "protocols": ["root", "file"]}))["inputs"]
    assert out["files"] == ["root://eos.example.org//eos/f1", "/gpfs/hc/f2"] and "dataset" not in out


def test_plain_files_may_carry_their_adler32() -> None:
    out = validate_template(doc({"files": [{"url": "/gpfs/hc/f1", "adler32": "0A1B2C3D"}, "/gpfs/hc/f2",
                                           {"url": "root://eos.example.org//eos/f3"}]}))["inputs"]
    assert out["files"] == [{"url": "/gpfs/hc/f1", "adler32": "0a1b2c3d"}, "/gpfs/hc/f2",
                            "root://eos.example.org//eos/f3"]


@pytest.mark.parametrize(("inputs", "field", "words"), [
    ({}, "inputs.dataset", "exactly one"),
    ({"files": [{"url": "/x", "adler32": "xyz"}]}, "inputs.files[0].adler32", "8 hex digits"),
    ({"files": ["/y", {"url": "/x", "adler32": 123}]}, "inputs.files[1].adler32", "8 hex digits"),
    ({"files": [{"adler32": "0a1b2c3d"}]}, "inputs.files[0].url", "absolute path"),
    ({"files": [{"url": "/x", "md5": "ab"}]}, "inputs.files[0].md5", "unknown key"),
    ({"dataset": "a:b", "files": ["/x"]}, "inputs.dataset", "exactly one"),
    ({"dataset": "no-scope"}, "inputs.dataset", "scope:name"),
    ({"files": []}, "inputs.files", "list of 1 to"),
    ({"files": ["relative/path"]}, "inputs.files[0]", "absolute path"),
    ({"files": None}, "inputs.files", "list"),
    ({"dataset": "a:b", "files_per_job": 0}, "inputs.files_per_job", "from 1 to"),
    ({"dataset": "a:b", "files_per_job": 2.5}, "inputs.files_per_job", "whole number"),
    ({"dataset": "a:b", "access": "stream"}, "inputs.access", "copy, direct"),
    ({"dataset": "a:b", "protocols": ["gsiftp"]}, "inputs.protocols[0]", "unknown protocol"),
    ({"dataset": "a:b", "protocols": ["root", "root"]}, "inputs.protocols", "twice"),
    ({"dataset": "a:b", "rse": "X"}, "inputs.rse", "unknown key"),
    ("a:b", "inputs", "table"),
])
def test_bad_inputs_name_the_field(inputs: Any, field: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_template(doc(inputs))
    assert (field, next(r for f, r in caught.value.errors if f == field)) in caught.value.errors
    assert words in dict(caught.value.errors)[field]


@pytest.mark.parametrize("backend", ["local", "panda"])
def test_every_backend_takes_an_rse(backend: str) -> None:
    options = {"site": "SITE"} if backend == "panda" else {}
    cleaned = backend_class(backend).validate_options({**options, "rse": " XRD_DISK|TAPE "})
    assert cleaned["rse"] == "XRD_DISK|TAPE"
    with pytest.raises(OptionError) as caught:
        backend_class(backend).validate_options({**options, "rse": "  "})
    assert caught.value.field == "rse"


def test_outputs_get_the_default_lifetime() -> None:
    out = validate_template({**doc(None), "outputs": {"rse": "SITE-A_SCRATCHDISK"}})
    assert out["outputs"] == {"rse": "SITE-A_SCRATCHDISK", "lifetime": 3600}
    assert validate_template(doc(None))["outputs"] is None
    scoped = validate_template({**doc(None), "outputs": {"rse": "X", "lifetime": 7200, "scope": "hc_out"}})
    assert scoped["outputs"] == {"rse": "X", "lifetime": 7200, "scope": "hc_out"}


@pytest.mark.parametrize(("outputs", "field", "words"), [
    ({}, "outputs.rse", "required"),
    ({"rse": "site-a disk"}, "outputs.rse", "RSE name"),
    ({"rse": "A|B"}, "outputs.rse", "RSE name"),
    ({"rse": "X", "lifetime": 10}, "outputs.lifetime", "from 60 to"),
    ({"rse": "X", "lifetime": "1h"}, "outputs.lifetime", "whole seconds"),
    ({"rse": "X", "lifetime": 10**9}, "outputs.lifetime", "from 60 to"),
    ({"rse": "X", "scope": "a;b"}, "outputs.scope", "Rucio scope"),
    ({"rse": "X", "dataset": "a:b"}, "outputs.dataset", "unknown key"),
    ("X", "outputs", "table"),
])
def test_bad_outputs_name_the_field(outputs: Any, field: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_template({**doc(None), "outputs": outputs})
    assert words in dict(caught.value.errors)[field]
