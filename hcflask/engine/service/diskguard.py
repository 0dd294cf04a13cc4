"""The disk guard: low free space pauses submission, with an alert.

Before a submission pass writes job rows and work dirs, the filesystems of
the instance folder (database, config) and of the jobs folder are checked.
Below ``[disk] min_free_percent`` free (for an unprivileged user) no new job
is written or submitted and one ``disk`` alert is open; when the space is
back the alert closes and submission resumes by itself.  Cancelling jobs
of ended tests goes on: it frees space.
"""
from __future__ import annotations

import os

from flask import current_app

from hcflask.engine import notify
from hcflask.engine.common import my_host
from hcflask.engine.robot.alerts import close_alert, find_open, raise_alert
from hcflask.extensions import db


def free_percent(path: str) -> float:
    """Free space (as an unprivileged user sees it) in percent of the filesystem holding ``path``."""
    st = os.statvfs(path)
    return 100.0 * st.f_bavail / st.f_blocks if st.f_blocks else 100.0


def low_filesystems() -> list[str]:
    """'<path>: 3.2 % free' for each watched filesystem below the threshold."""
    threshold = float(current_app.config["DISK_MIN_FREE_PERCENT"])
    paths = dict.fromkeys([current_app.instance_path, current_app.config["JOBS_ROOT"]])
    out = []
    for path in paths:
        if os.path.isdir(path) and (free := free_percent(path)) < threshold:
            out.append(f"{path}: {free:.1f} % free (below {threshold:g} %)")
    return out


def submission_allowed() -> bool:
    """False (and the alert open) while a watched filesystem is low on space."""
    key = f"disk:{my_host()}"
    low = low_filesystems()
    if low:
        _alert, event = raise_alert("disk", key, f"Disk almost full on {my_host()}: submission paused",
                                    "; ".join(low))
    else:
        alert = find_open(key)
        event = close_alert(alert, "free space is back: submission resumed") if alert else None
    if event is not None:
        notify.enqueue(event, notify.event_data(event))
    db.session.commit()
    return not low
