"""The one seam through which hcflask runs external commands.

Always an argument list (never a shell string), always a timeout, and the
``SBATCH_*``/``SLURM_*`` variables of the calling environment removed so a
service started from inside a Slurm job cannot leak its own settings into
the test jobs it submits.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

from hcflask.backends.base import BackendUnavailable

_STRIPPED_PREFIXES = ("SBATCH_", "SLURM_", "SALLOC_", "SRUN_")


_KEPT = frozenset({"SLURM_CONF"})


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _KEPT or not k.startswith(_STRIPPED_PREFIXES)}
    env.update(extra or {})
    return env


def run(
    argv: Sequence[str],
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` and return the finished process (whatever its exit code).

    A missing program or a command that hangs past ``timeout`` raises
    :class:`BackendUnavailable`: from the engine's point of view the batch
    system did not answer.
    """
    try:
        return subprocess.run(  # noqa: S603 - argv list, no shell
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=clean_environ(env),
            input=input,
            check=False,
        )
    except FileNotFoundError as exc:
        raise BackendUnavailable(f"{argv[0]}: command not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise BackendUnavailable(f"{argv[0]}: no answer within {timeout:g} s") from exc
