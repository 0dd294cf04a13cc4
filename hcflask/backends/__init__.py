"""Backends: one module per batch system, looked up by name.

Modules are imported lazily, so a site without the PanDA client (say) only
gets an error when it actually configures a ``panda`` queue.
"""
from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

from hcflask.backends.base import (
    Backend,
    BackendError,
    BackendUnavailable,
    JobRef,
    JobSpec,
    OptionError,
    Resources,
    Status,
    SubmitError,
)

__all__ = [
    "Backend", "BackendError", "BackendUnavailable", "JobRef", "JobSpec",
    "OptionError", "Resources", "Status", "SubmitError",
    "BACKEND_NAMES", "backend_class", "get_backend", "register",
]

#: backend name -> module that registers it
_MODULES = {
    "local": "hcflask.backends.local",
    "slurm": "hcflask.backends.slurm",
    "panda": "hcflask.backends.panda",
}
BACKEND_NAMES = tuple(_MODULES)
_REGISTRY: dict[str, type[Backend]] = {}
_CREATING = threading.Lock()


def register(name: str) -> Callable[[type[Backend]], type[Backend]]:
    """Class decorator that makes a backend known under ``name``."""

    def decorate(cls: type[Backend]) -> type[Backend]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def backend_class(name: str) -> type[Backend]:
    """The backend class for ``name``; raises :class:`OptionError` for an unknown one."""
    if name not in _REGISTRY:
        if name not in _MODULES:
            raise OptionError("backend", f"unknown backend {name!r} (known: {', '.join(BACKEND_NAMES)})")
        try:
            importlib.import_module(_MODULES[name])
        except ImportError as exc:
            raise OptionError("backend", f"backend {name!r} is not usable here: {exc}") from exc
    return _REGISTRY[name]


def get_backend(name: str, config: Mapping[str, Any], cache: dict[str, Backend]) -> Backend:
    """One backend instance per name, kept in ``cache`` (the app's extensions);
    ``config`` is its ``[backends.<name>]`` section, used when it is created.

    Ticks run on several threads, so creating it is guarded: never two
    instances of one backend (the local backend counts its slots in one).
    """
    if name not in cache:
        with _CREATING:
            if name not in cache:
                cache[name] = backend_class(name)(config)
    return cache[name]
