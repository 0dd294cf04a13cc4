"""``hc queue import-cric``: PanDA queues from a CRIC-style export."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from hcflask.backends.panda_cric import import_cric, queues_from_cric
from hcflask.extensions import db
from hcflask.models import Queue, ValidationError
from hcflask.states import QueueStatus

CRIC = {
    "SITE_A_UCORE": {"panda_resource": "SITE_A_UCORE", "status": "online", "state": "ACTIVE", "type": "unified",
                     "corecount": 8, "cloud": "DE", "atlas_site": "SITE-A"},
    "SITE_A_TEST": {"panda_resource": "SITE_A_TEST", "status": "test", "state": "ACTIVE", "type": "analysis"},
    "SITE_B": {"panda_resource": "SITE_B", "status": "brokeroff", "state": "ACTIVE", "type": "production"},
    "SITE_OLD": {"panda_resource": "SITE_OLD", "status": "online", "state": "INACTIVE", "type": "unified"},
}


def test_queues_from_cric_maps_status_skips_inactive_and_filters_types():
    queues = {q["name"]: q for q in queues_from_cric(CRIC, {"server": "https://panda.example:25443"})}
    assert set(queues) == {"SITE_A_UCORE", "SITE_A_TEST", "SITE_B"}
    assert queues["SITE_A_UCORE"]["status"] is QueueStatus.ONLINE
    assert queues["SITE_A_TEST"]["status"] is QueueStatus.TEST
    assert queues["SITE_B"]["status"] is QueueStatus.OFFLINE
    assert queues["SITE_A_UCORE"]["options"] == {"server": "https://panda.example:25443", "site": "SITE_A_UCORE"}
    assert queues["SITE_A_UCORE"]["description"] == "PanDA queue at SITE-A (unified, 8 cores, cloud DE)"
    assert {q["name"] for q in queues_from_cric(CRIC, include_inactive=True)} >= {"SITE_OLD"}
    assert [q["name"] for q in queues_from_cric(CRIC, types=["analysis"])] == ["SITE_A_TEST"]
    assert [q["name"] for q in queues_from_cric(list(CRIC.values()), types=["production"])] == ["SITE_B"]


def test_import_creates_queues_once_with_site_options(app, tmp_path):
    proxy = tmp_path / "proxy.pem"
    proxy.write_text("not read at import")
    export = tmp_path / "cric.json"
    export.write_text(json.dumps(CRIC))
    options = {"server": "https://panda.example:25443", "proxy": str(proxy), "prod_source_label": "prod_test"}
    with app.app_context():
        lines = import_cric(export, options)
        assert lines == ["SITE_A_UCORE: created (online)", "SITE_A_TEST: created (test)",
                         "SITE_B: created (offline)"]
        queues = {q.name: q for q in db.session.scalars(select(Queue))}
        assert queues["SITE_A_UCORE"].backend == "panda"
        assert queues["SITE_A_UCORE"].options == {
            "server": "https://panda.example:25443", "proxy": str(proxy), "prod_source_label": "prod_test",
            "processing_type": "hammercloud", "site": "SITE_A_UCORE",
        }
        assert queues["SITE_B"].status == "offline" and queues["SITE_B"].events[0].actor == "import-cric"
        assert import_cric(export, options)[0] == "SITE_A_UCORE: exists, left alone"


def test_import_refuses_bad_options_and_bad_files_before_creating_anything(app, tmp_path):
    export = tmp_path / "cric.json"
    export.write_text(json.dumps(CRIC))
    with app.app_context():
        with pytest.raises(ValidationError) as err:
            import_cric(export, {"prod_source_label": "managed"})
        assert err.value.field == "options.prod_source_label"
        (tmp_path / "broken.json").write_text("{not json")
        with pytest.raises(ValidationError) as err:
            import_cric(tmp_path / "broken.json")
        assert err.value.field == "file"
        assert db.session.scalars(select(Queue)).all() == []


def test_rse_from_cric_storages():
    """astorages.read_lan first (a union of RSEs), else the older ddm list; none: no rse option."""
    export = {
        "Q1": {"panda_resource": "Q1", "astorages": {"read_lan": ["SITE-A_DATADISK", "SITE-A_SCRATCHDISK"],
                                                     "write_lan": ["SITE-A_SCRATCHDISK"]}},
        "Q2": {"panda_resource": "Q2", "ddm": "SITE-B_DATADISK, SITE-B_LOCALGROUPDISK"},
        "Q3": {"panda_resource": "Q3"},
    }
    options = {q["name"]: q["options"] for q in queues_from_cric(export)}
    assert options["Q1"]["rse"] == "SITE-A_DATADISK|SITE-A_SCRATCHDISK"
    assert options["Q2"]["rse"] == "SITE-B_DATADISK|SITE-B_LOCALGROUPDISK"
    assert "rse" not in options["Q3"]
