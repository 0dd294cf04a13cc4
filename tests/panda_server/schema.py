"""Generate the PostgreSQL schema of the test PanDA server from the installed package.

The upstream schema files are not part of this repository.  The job,
file, dataset and JEDI tables are built from the column lists the server's
own spec classes carry (``JobSpec._attributes`` ...), typed by name; the
~20 helper tables the server's SQL touches in the submit -> pilot -> adder
-> kill flow are listed here by hand.  The set was found by running that
flow with ``log_min_error_statement=error``: the fixture fails on any SQL
error in the PostgreSQL log, so a missing table or column shows at once.

Run with the *server's* Python (it imports ``pandaserver``), with
``PANDA_HOME`` pointing at a configuration; prints SQL on stdout.
"""
from __future__ import annotations

import importlib
import re
import sys

SCHEMAS = ("panda", "pandameta", "pandaarch")

#: table -> (module, class, extra columns)
SPEC_TABLES = {
    "panda.jobsDefined4": ("JobSpec", "JobSpec", ()),
    "panda.jobsActive4": ("JobSpec", "JobSpec", ()),
    "panda.jobsWaiting4": ("JobSpec", "JobSpec", ()),
    "panda.jobsArchived4": ("JobSpec", "JobSpec", ()),
    "pandaarch.jobsArchived": ("JobSpec", "JobSpec", ()),
    "panda.filesTable4": ("FileSpec", "FileSpec", (("modificationTime", "timestamp"),)),
    "panda.Datasets": ("DatasetSpec", "DatasetSpec", ()),
    "panda.JEDI_Tasks": ("JediTaskSpec", "JediTaskSpec", ()),
    "panda.JEDI_Datasets": ("JediDatasetSpec", "JediDatasetSpec", ()),
    "panda.JEDI_Dataset_Contents": ("JediFileSpec", "JediFileSpec", ()),
    "panda.Harvester_Workers": ("WorkerSpec", "WorkerSpec", ()),
    "panda.JEDI_Work_Queue": ("WorkQueue", "WorkQueue", ()),
    "panda.Global_Shares": ("GlobalShares", "Share", ()),
}

#: names that look numeric or temporal by the rules below but hold text
TEXT = {
    "GUID", "prodUserID", "harvesterID", "schedulerID", "pilotID", "batchID", "nodeID", "ticketID", "transExitCode",
    "cpuConsumptionUnit", "vuid", "is_waiting", "useJumbo", "throttled",
}
FLOAT = {
    "cpuConversion", "hs06sec", "gco2_regional", "gco2_global", "memory_leak", "memory_leak_x2",
    "memory_leak_core", "failureRate", "cpuEfficiency", "queue_share", "value", "progress",
    "rateRCHAR", "rateWCHAR", "rateRBYTES", "rateWBYTES",
}
_TIME = re.compile(r"(Time|Date|date|^lastUpdate|^timeStamp)$")
_NOT_TIME = {"cpuConsumptionTime", "cpuTime", "walltime"}
_INT = re.compile(
    r"(^n[A-Z]|^num|ID$|Id$|_id$|_ID$|Nr$|Count$|Priority$|Attempts?$|Code$|Bytes$|^fsize$|Events?$"
    r"|CHAR$|BYTES$|RSS$|VMEM$|SWAP$|PSS$|[wW]alltime$|^cpuConsumptionTime$|^cpuTime$|^hs06$|^diskIO$"
    r"|Flag$|^eventService$|^parent_tid$|^goal$|^ioIntensity$|^keepTrack$|^boundaryID$|^maxFailure$"
    r"|^queue_order$|^stretchable$|^numberfiles$|^currentfiles$|^transferStatus$|^jobsetID$)"
)


def column_type(name: str) -> str:
    if name in TEXT:
        return "text"
    if name in FLOAT:
        return "double precision"
    if _TIME.search(name) and name not in _NOT_TIME:
        return "timestamp"
    if _INT.search(name):
        return "bigint"
    return "text"


#: helper tables: table -> columns "name type, ..."
HELPERS = {
    "panda.jobParamsTable": "PandaID bigint, jobParameters text, modificationTime timestamp",
    "panda.metaTable": "PandaID bigint, metaData text, modificationTime timestamp",
    "panda.jobs_StatusLog": (
        "PandaID bigint, modificationTime timestamp, jobStatus text, prodSourceLabel text, cloud text, "
        "computingSite text, modificationHost text, modiftime_extended timestamp"
    ),
    "panda.Job_Output_Report": (
        "PandaID bigint, prodSourceLabel text, jobStatus text, attemptNr bigint, data text, "
        "timeStamp timestamp, lockedBy text, lockedTime timestamp"
    ),
    "panda.schedconfig_json": "panda_queue text primary key, data jsonb, last_update timestamp",
    "panda.site": "site_name text primary key, role text, tier_level bigint",
    "panda.panda_site": "panda_site_name text primary key, site_name text",
    "panda.ddm_endpoint": (
        "ddm_endpoint_name text primary key, site_name text, ddm_spacetoken_name text, type text, "
        "is_tape text, blacklisted text, blacklisted_write text, blacklisted_read text, space_used bigint, "
        "space_free bigint, space_total bigint, space_expired bigint, space_timestamp timestamp, "
        "detailed_status text"
    ),
    "panda.panda_ddm_relation": (
        "panda_site_name text, ddm_endpoint_name text, roles text, is_local text, order_read bigint, "
        "order_write bigint, default_read text, default_write text, scope text"
    ),
    "panda.config": "app text, component text, key text, value text, value_json text, type text, vo text, descr text",
    "panda.resource_types": (
        "resource_name text primary key, mincore bigint, maxcore bigint, minrampercore bigint, "
        "maxrampercore bigint"
    ),
    "panda.Harvester_Slots": (
        "pandaQueueName text, gshare text, resourceType text, numSlots bigint, modificationTime timestamp, "
        "expirationTime timestamp"
    ),
    "panda.Harvester_Rel_Jobs_Workers": "harvesterID text, workerID bigint, PandaID bigint, lastUpdate timestamp",
    "panda.CARBON_REGION_EMISSIONS": "region text, timestamp timestamp, value double precision",
    "panda.RETRYERRORS": (
        "retryerror_id bigint, errorsource text, errorcode bigint, errordiag text, parameters text, "
        "architecture text, release text, workqueue_id bigint, description text, expiration_date timestamp, "
        "active text, retryaction bigint"
    ),
    "panda.RETRYACTIONS": "retryaction_id bigint, retry_action text, active text, retry_description text",
    "panda.ERROR_CLASSIFICATION": (
        "id bigint, error_source text, error_code bigint, error_diag text, description text, "
        "error_class text, active text, reg_date timestamp"
    ),
    "panda.SQL_QUEUE": (
        "topic text, PandaID bigint, execution_order bigint, jediTaskID bigint, creationTime timestamp, data text"
    ),
    "pandameta.users": (
        "ID bigint, name text, dn text, email text, url text, location text, classA text, classP text, "
        "classC text, classG text, classL text, classD text, cpua1 bigint, cpua7 bigint, cpua30 bigint, "
        "quotaa1 bigint, quotaa7 bigint, quotaa30 bigint, gridpref text, status text, lastmod timestamp, "
        "firstjob timestamp, latestjob timestamp, pagecache text, cachetime timestamp, ncurrent bigint, "
        "jobid bigint"
    ),
    "pandameta.siteData": (
        "site text, flag text, hours bigint, getjob bigint, updatejob bigint, nojob bigint, getjobabs bigint, "
        "updatejobabs bigint, nojobabs bigint, lastmod timestamp, nstart bigint, finished bigint, "
        "failed bigint, defined bigint, assigned bigint, waiting bigint, activated bigint, holding bigint, "
        "running bigint, transferring bigint, laststart timestamp, lastend timestamp, lastfail timestamp, "
        "lastpilot timestamp, lastpilotpid bigint"
    ),
}

SEQUENCES = (
    "panda.jobsdefined4_pandaid_seq", "panda.filestable4_row_id_seq", "pandameta.users_id_seq",
)

VIEWS = {
    "panda.jobs_share_stats": (
        "SELECT gshare, computingSite, jobStatus, resource_type, workQueue_ID, VO, prodSourceLabel, "
        "count(*) AS njobs, sum(coalesce(hs06, 0)) AS hs, avg(coalesce(minRamCount, 0)) AS prorated_mem_avg "
        "FROM panda.jobsActive4 "
        "GROUP BY gshare, computingSite, jobStatus, resource_type, workQueue_ID, VO, prodSourceLabel"
    ),
}


def spec_columns(module: str, cls: str) -> list[str]:
    spec = getattr(importlib.import_module(f"pandaserver.taskbuffer.{module}"), cls)
    return list(getattr(spec, "_attributes", None) or spec.attributes)


def generate() -> str:
    out = [f"CREATE SCHEMA {name};" for name in SCHEMAS]
    for table, (module, cls, extra) in SPEC_TABLES.items():
        cols = [f"{c} {column_type(c)}" for c in spec_columns(module, cls)]
        cols += [f"{c} {t}" for c, t in extra]
        out.append(f"CREATE TABLE {table} ({', '.join(cols)});")
    out += [f"CREATE TABLE {table} ({cols});" for table, cols in HELPERS.items()]
    out += [f"CREATE SEQUENCE {name};" for name in SEQUENCES]
    out += [f"CREATE VIEW {name} AS {query};" for name, query in VIEWS.items()]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(generate())
