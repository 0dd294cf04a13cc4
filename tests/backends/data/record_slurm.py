"""Regenerate the recorded Slurm output the parser tests read (run by hand, as root).

    python3 tests/backends/data/record_slurm.py

Starts a throw-away accounting cluster (tests/backends/slurm_cluster.py), runs
one job of each kind it can produce for real (completed, exit 3, timeout,
memory kill, cancelled while pending and while running, pending on BeginTime,
node failure by killing slurmd) and writes what squeue, sacct, sacct -c,
scontrol, sinfo, sbatch and scancel printed into this folder.  Takes ~3 min.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from slurm_cluster import SlurmCluster  # noqa: E402

from hcflask.backends import slurm_parse as sp  # noqa: E402


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="hc-record-"))
    cluster = SlurmCluster(root, accounting=True)
    cluster.start()
    out = HERE
    try:
        def sbatch(name: str, *args: str) -> str:
            return cluster.run("sbatch", "--parsable", f"--job-name={name}", f"--output={root}/%j.out",
                               *args).stdout.strip()

        ids = {
            "ok": sbatch("hc-rec-ok", "--wrap", "echo hc-ok"),
            "exit3": sbatch("hc-rec-exit3", "--wrap", "exit 3"),
            "timeout": sbatch("hc-rec-timeout", "--time=1", "--wrap", "sleep 300"),
            "oom": sbatch("hc-rec-oom", "--mem=50M", "--wrap",
                          "python3 -c 'import time; x = bytearray(400 * 2**20); time.sleep(20)'"),
            "held": sbatch("hc-rec-held", "--begin=now+1hour", "--wrap", "true"),
            "running": sbatch("hc-rec-running", "--wrap", "sleep 600"),
        }
        time.sleep(5)
        (out / "squeue_live.txt").write_text(
            cluster.run("squeue", "-h", "-t", "all", "-o", sp.SQUEUE_FORMAT).stdout)
        (out / "scancel_v.txt").write_text(
            cluster.run("scancel", "-v", "--state=PENDING", ids["held"], ids["running"]).stderr)
        cluster.run("scancel", ids["running"])
        for name, args in (("sbatch_bad_partition.txt", ["-p", "nope", "--wrap", "true"]),
                           ("sbatch_bad_option.txt", ["--bogus", "--wrap", "true"])):
            (out / name).write_text(cluster.run("sbatch", *args, check=False).stderr)
        (out / "sinfo.txt").write_text(cluster.run("sinfo", "-h", "-o", sp.SINFO_FORMAT).stdout)
        # a node failure: slurmd dies under a running job and does not come back in time
        ids["nodefail"] = sbatch("hc-rec-nodefail", "--no-requeue", "--wrap", "sleep 600")
        time.sleep(3)
        cluster._stop("slurmd")
        time.sleep(100)
        all_ids = ",".join(ids.values())
        (out / "squeue_final.txt").write_text(
            cluster.run("squeue", "-h", "-t", "all", "-o", sp.SQUEUE_FORMAT).stdout)
        (out / "sacct.txt").write_text(
            cluster.run("sacct", "-n", "-P", "-j", all_ids, "-o", sp.SACCT_FIELDS).stdout)
        (out / "sacct_c.txt").write_text(
            cluster.run("sacct", "-c", "-n", "-P", "-j", all_ids, "-o", sp.SACCT_FIELDS).stdout)
        (out / "scontrol_show_job.txt").write_text(cluster.run("scontrol", "-o", "show", "job").stdout)
        cluster.stop_controller()
        (out / "squeue_down.txt").write_text(cluster.run("squeue", "-h", check=False).stderr)
        (out / "ids.txt").write_text("".join(f"{k} {v}\n" for k, v in ids.items()))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
