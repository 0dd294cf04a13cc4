"""Configuration: package defaults → ``<instance>/hc.toml`` → ``HC_*`` environment.

The TOML file has top-level keys and sections; ``[server] port = 8080``
becomes ``SERVER_PORT`` and can be overridden by ``HC_SERVER_PORT``.  The
``[backends.<name>]`` and ``[robot]`` sections are kept as dictionaries.
Unknown keys and values of the wrong type are errors naming the key, so a
typo in hc.toml never silently falls back to a default.
"""
from __future__ import annotations

import os
import secrets
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CONFIG_FILE = "hc.toml"

#: flattened keys and their defaults; the type of the default is the type accepted
DEFAULTS: dict[str, Any] = {
    "SECRET_KEY": "",
    "INSTANCE_NAME": "hc",
    "HOST_NAME": socket.gethostname(),
    "DATABASE_URL": "",
    "READ_REQUIRES_LOGIN": False,
    "DEMO": True,
    "SERVER_BIND": "127.0.0.1",
    "SERVER_PORT": 8080,
    "SERVER_WORKERS": 2,
    "SERVER_THREADS": 4,
    "SCHEDULER_ENABLED": True,
    "SCHEDULER_CORE_SECONDS": 15.0,
    "SCHEDULER_SUBMISSION_SECONDS": 5.0,
    "SCHEDULER_MONITOR_SECONDS": 5.0,
    "SCHEDULER_ACTIONS_SECONDS": 2.0,
    # how often a worker without the scheduler tries the instance lock again
    "SCHEDULER_LOCK_RETRY_SECONDS": 2.0,
    # a tick of this host not finished for this long makes /healthz answer 503
    "SCHEDULER_STALE_SECONDS": 300.0,
    # one INFO line per tick with its duration and summary (for diagnosing a busy engine)
    "SCHEDULER_LOG_TICKS": False,
    # new jobs one submission tick writes and submits at most (the rest wait for the next ticks)
    "SCHEDULER_JOBS_PER_TICK": 250,
    "HOSTS_HEARTBEAT_SECONDS": 10.0,
    "HOSTS_LEASE_SECONDS": 60.0,
    # a dead host's tests are adopted by a live one after this long (0: never)
    "HOSTS_ADOPT_AFTER": 600.0,
    # job work dirs: on a filesystem the compute nodes see ('' = <instance>/jobs)
    "PATHS_JOBS": "",
    "JOBS_CANCEL_RUNNING": False,
    "JOBS_OUTPUT_LIMIT": 65536,
    "JOBS_RESULT_GRACE_SECONDS": 120,
    "JOBS_PER_PAGE": 50,
    #: bytes of stdout and of stderr a job keeps (head and tail, half each)
    "JOBS_OUTPUT_CAP": 10 * 1024 * 1024,
    "RETENTION_JOBS_DAYS": 90.0,
    "RETENTION_INTERVAL_SECONDS": 300.0,
    "RETENTION_FAILED_DAYS": 180.0,
    "RETENTION_WORKDIRS_DAYS": 14.0,
    "RETENTION_CHUNK": 1000,
    "RETENTION_BUDGET_SECONDS": 2.0,
    #: submission pauses while the instance or jobs filesystem has less free space than this
    "DISK_MIN_FREE_PERCENT": 5.0,
    #: the widest date range a report may ask for
    "REPORTS_MAX_DAYS": 366,
    #: how long a process keeps the rollup sums of past days (they change only when a job is judged late)
    "REPORTS_CACHE_SECONDS": 300.0,
    # the Rucio server input datasets are looked up in (docs/data.md); userpass auth
    "RUCIO_HOST": "",
    "RUCIO_AUTH_HOST": "",
    "RUCIO_ACCOUNT": "root",
    "RUCIO_USERNAME": "",
    "RUCIO_PASSWORD": "",
    "RUCIO_PASSWORD_FILE": "",
    "RUCIO_TIMEOUT": 30.0,
    #: a test's replica list is asked again after this long; after an outage, retried this often
    "RUCIO_REFRESH_SECONDS": 3600.0,
    "RUCIO_RETRY_SECONDS": 30.0,
    #: stage-out (docs/data.md): the rucio.cfg the jobs' ``rucio`` command uses (RUCIO_CONFIG; '' = the node's
    #: own), and the scope of their output files ('' = user.<account>)
    "RUCIO_JOB_CONFIG": "",
    "RUCIO_OUTPUT_SCOPE": "",
    "SERVER_SECURE_COOKIES": False,
    "SERVER_LOGIN_LIMIT": "10 per minute",
}
#: keys that must be positive (zero would divide by zero or stop the loop), and upper bounds
POSITIVE = ("SERVER_PORT", "SERVER_WORKERS", "SERVER_THREADS", "SCHEDULER_CORE_SECONDS",
            "SCHEDULER_SUBMISSION_SECONDS", "SCHEDULER_MONITOR_SECONDS", "RETENTION_INTERVAL_SECONDS",
            "JOBS_OUTPUT_LIMIT", "JOBS_PER_PAGE", "JOBS_OUTPUT_CAP", "RETENTION_JOBS_DAYS",
            "RETENTION_FAILED_DAYS", "RETENTION_WORKDIRS_DAYS", "RETENTION_CHUNK", "REPORTS_MAX_DAYS",
            "RUCIO_TIMEOUT", "SCHEDULER_JOBS_PER_TICK")
UPPER = {"DISK_MIN_FREE_PERCENT": 100, "JOBS_PER_PAGE": 500, "SERVER_PORT": 65535}
#: sections kept whole, as dictionaries
DICT_SECTIONS: dict[str, dict[str, Any]] = {
    "BACKENDS": {"local": {}, "slurm": {}, "panda": {}},
    # sign-in through the site's OIDC issuer and LDAP (hcflask.access.settings, docs/admin.md)
    "AUTH": {"oidc": {}, "ldap": {}},
    # upper limits of template and queue fields (hcflask.models.spec.DEFAULT_LIMITS, docs/api.md)
    "LIMITS": {},
    # the robot's numbers (docs/design.md "The robot"); [robot.templates.<name>] and
    # [robot.queues.<name>] override them, [robot.actions.<backend>] adds actions
    "ROBOT": {
        "enabled": True,
        "window_hours": 4.0,
        "exclude_last": 3,
        "pair_first": 2,
        "pair_second": 1,
        "spread_last": 1,
        "spread_templates": 3,
        "recover_last": 2,
        "flap_hours": 6.0,
        "outage_share": 0.3,
        "outage_min_queues": 3,
        "guard_window_hours": 1.0,
        "outage_rollback": True,
        "band_k": 3.0,
        "band_baseline": 20,
        "band_run": 3,
        "performance_excludes": False,
        "autoexclusion": True,
        "action_timeout": 10.0,
        "action_retries": 8,
        "action_backoff_seconds": 5.0,
        "templates": {},
        "queues": {},
        "actions": {},
    },
}
#: short environment names for the most used keys
ENV_ALIASES = {
    "HC_PORT": ("SERVER_PORT",),
    "HC_BIND": ("SERVER_BIND",),
    "HC_TICK_SECONDS": (
        "SCHEDULER_CORE_SECONDS",
        "SCHEDULER_SUBMISSION_SECONDS",
        "SCHEDULER_MONITOR_SECONDS",
        "SCHEDULER_ACTIONS_SECONDS",
    ),
}


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and the reason."""


def instance_path() -> Path:
    """The instance folder: ``HC_INSTANCE`` or ``./instance``."""
    return Path(os.environ.get("HC_INSTANCE", "instance")).resolve()


def _coerce(key: str, value: Any, where: str) -> Any:
    default = DEFAULTS[key]
    kind = type(default)
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        if isinstance(value, bool):
            return value
    elif kind in (int, float):
        try:
            if isinstance(value, bool):
                raise ValueError
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if number < 0:
            raise ConfigError(f"{where}: must not be negative, got {value!r}")
        return number
    elif isinstance(value, str):
        return value
    raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")


def flatten(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Turn the TOML document into flat config keys, checking names and types."""
    flat: dict[str, Any] = {}
    for name, value in data.items():
        upper = name.upper()
        if upper in DICT_SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: [{name}] must be a table")
            flat[upper] = value
        elif isinstance(value, dict):
            for sub, subvalue in value.items():
                key = f"{upper}_{sub.upper()}"
                if key not in DEFAULTS:
                    raise ConfigError(f"{source}: unknown key '{name}.{sub}'")
                flat[key] = _coerce(key, subvalue, f"{source}: {name}.{sub}")
        elif upper in DEFAULTS:
            flat[upper] = _coerce(upper, value, f"{source}: {name}")
        else:
            raise ConfigError(f"{source}: unknown key '{name}'")
    return flat


def check_limits(config: Mapping[str, Any]) -> None:
    """Numbers that would break a page or the loop are an error at start-up, naming the key."""
    for key in POSITIVE:
        if not config[key] > 0:
            raise ConfigError(f"{_toml_name(key)}: must be greater than 0, got {config[key]!r}")
    for key, high in UPPER.items():
        if config[key] > high:
            raise ConfigError(f"{_toml_name(key)}: must be at most {high}, got {config[key]!r}")


def _toml_name(key: str) -> str:
    """``JOBS_PER_PAGE`` → ``jobs.per_page`` (as written in hc.toml)."""
    section, _, rest = key.lower().partition("_")
    return f"{section}.{rest}"


def read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return flatten(data, str(path))


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for env, keys in ENV_ALIASES.items():
        if env in environ:
            for key in keys:
                flat[key] = _coerce(key, environ[env], env)
    for key in DEFAULTS:
        env = f"HC_{key}"
        if env in environ:
            flat[key] = _coerce(key, environ[env], env)
    return flat


def merge_sections(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge two levels deep, so ``[backends.slurm]`` adds to the defaults."""
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_sections(merged[key], value)
        else:
            merged[key] = value
    return merged


def load(path: Path, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Defaults, then the instance's hc.toml, then ``HC_*`` variables."""
    config: dict[str, Any] = dict(DEFAULTS)
    config.update({k: merge_sections({}, v) for k, v in DICT_SECTIONS.items()})
    config = merge_sections(config, read_file(path / CONFIG_FILE))
    config.update(from_environ(os.environ if environ is None else environ))
    return config


def write_initial(path: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Create ``hc.toml`` with a fresh secret key (only if it does not exist).

    ``HC_DATABASE_URL`` in the environment is written into it, so a scale-out
    host initialised against PostgreSQL never creates a stray SQLite file.
    """
    url = (os.environ if environ is None else environ).get("HC_DATABASE_URL", "")
    path.mkdir(parents=True, exist_ok=True)
    target = path / CONFIG_FILE
    if target.exists():
        return target
    database_line = (f"database_url = {_toml_string(url)}" if url else
                     '# database_url = "postgresql+psycopg://hc@dbhost/hc"   # e.g.; default: SQLite in this folder')
    host = "".join(c for c in socket.gethostname().split(".")[0].lower() if c.isalnum())[:12]
    d, t, r = _default, _toml_value, DICT_SECTIONS["ROBOT"]
    text = f"""# hcflask instance configuration (see docs/admin.md "Configuration").
# Every key can also be set with an HC_* environment variable.  Every value
# shown (set or commented out) is the default, unless its comment says "e.g.".
secret_key = "{secrets.token_hex(32)}"
# Job names are hc-<instance_name>-<job id>; keep it unique per batch system.
instance_name = "{host or 'hc'}{secrets.token_hex(2)}"
{database_line}
read_requires_login = {d("READ_REQUIRES_LOGIN")}

[server]
bind = {d("SERVER_BIND")}
port = {d("SERVER_PORT")}
workers = {d("SERVER_WORKERS")}
# threads = {d("SERVER_THREADS")}
# secure_cookies = true   # e.g. behind HTTPS: session cookies only over HTTPS
# login_limit = {d("SERVER_LOGIN_LIMIT")}   # failed logins per client address (docs/api.md)

[scheduler]
enabled = {d("SCHEDULER_ENABLED")}
core_seconds = {d("SCHEDULER_CORE_SECONDS")}
submission_seconds = {d("SCHEDULER_SUBMISSION_SECONDS")}
monitor_seconds = {d("SCHEDULER_MONITOR_SECONDS")}
# jobs_per_tick = {d("SCHEDULER_JOBS_PER_TICK")}     # most jobs a submission tick writes, a monitor tick updates
# log_ticks = {d("SCHEDULER_LOG_TICKS")}       # one log line per tick with its duration

[hosts]                   # several hosts on one PostgreSQL (docs/scale-out.md)
# lease_seconds = {d("HOSTS_LEASE_SECONDS")}      # a host whose heartbeat is older than this is dead
# adopt_after = {d("HOSTS_ADOPT_AFTER")}       # then a live host adopts its tests (0: never)

[paths]
# jobs = "/shared/hc/jobs" # e.g. job work dirs, on a filesystem the compute nodes see
                          # (the database and the lock stay in this folder, on local disk)

[jobs]
cancel_running = {d("JOBS_CANCEL_RUNNING")}    # on test cancel/expiry, also cancel running jobs
output_limit = {d("JOBS_OUTPUT_LIMIT")}      # bytes of stdout/stderr shown per job
# output_cap = {d("JOBS_OUTPUT_CAP")}  # bytes of stdout/stderr a job keeps (first and last half)

[retention]               # docs/scale.md; rollups (the plots) are kept forever
# jobs_days = {d("RETENTION_JOBS_DAYS")}          # finished job rows, events and metrics
# failed_days = {d("RETENTION_FAILED_DAYS")}       # failed and lost jobs are kept longer
# workdirs_days = {d("RETENTION_WORKDIRS_DAYS")}      # job work dirs

[disk]
# min_free_percent = {d("DISK_MIN_FREE_PERCENT")}    # below this, submission pauses with an alert

[rucio]                   # input datasets (docs/data.md); needs pip install hcflask[data]
# host = "https://rucio.example.org"   # e.g.; the REST server
# account = "hammercloud"     # e.g. (default: root)
# username = "hammercloud"    # e.g.; userpass authentication
# password_file = "/etc/hc/rucio.pw"   # e.g.
# job_config = "/etc/hc/rucio-job.cfg"   # e.g.; stage-out: the jobs' rucio.cfg (default: the node's own)
# output_scope = "hc_outputs"           # e.g.; stage-out scope (default: user.<account>)

[backends.local]
# slots = 4               # e.g.; jobs at once per local queue (default: the number of cores)

[robot]                   # auto-exclusion (docs/robot.md); the defaults:
# enabled = {t(r["enabled"])}          # false: a hard off that the switch (hc robot enable|disable) cannot override
# window_hours = {t(r["window_hours"])}        # only jobs that ended this recently count
# exclude_last = {t(r["exclude_last"])}        # exclude when the last {r["exclude_last"]} jobs of one template failed
# recover_last = {t(r["recover_last"])}        # recover when the last {r["recover_last"]} of every driving
#                         # template succeeded
# flap_hours = {t(r["flap_hours"])}          # anti-flapping after a recovery
# outage_share = {t(r["outage_share"])}      # more than {r["outage_share"]:.0%} of the queues a driving test
# outage_min_queues = {t(r["outage_min_queues"])}   # judges (and at least {r["outage_min_queues"]}) failing or held
#                         # out with one failure signature: an outage alert, no
#                         # exclusions, that signature's claims rolled back
# action_retries = {t(r["action_retries"])}      # retries of a failed action, the first after
#                         # {t(r["action_backoff_seconds"])} s, each next one twice as long
# [robot.actions.slurm]   # e.g. what to do on exclude/recover/alert (default: record only)
# exclude = [{{type = "command", argv = ["scontrol", "update", "PartitionName={{queue}}", "State=DRAIN"],
#            undo = ["scontrol", "update", "PartitionName={{queue}}", "State=UP"]}}]
# alert = [{{type = "webhook", url = "https://chat.example.org/hook"}}]
"""
    target.write_text(text)
    target.chmod(0o600)
    return target


def _default(key: str) -> str:
    """``DEFAULTS[key]`` as hc.toml writes it: the generated file quotes the code, never a copy."""
    return _toml_value(DEFAULTS[key])


def _toml_value(value: Any) -> str:
    """A value as an admin would type it in TOML (whole floats without ``.0``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return _toml_string(value)
    return str(value)


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
