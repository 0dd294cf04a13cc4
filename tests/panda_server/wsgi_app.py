"""The test PanDA server's WSGI entry point, for gunicorn with TLS.

Apache's ``mod_ssl`` + ``WSGIScriptAliasMatch`` do two things the server
relies on; this shim does them under gunicorn:

* the identity: PanDA trusts ``SSL_CLIENT_S_DN`` only, so it is set here
  from the client certificate gunicorn has verified against the test CA,
  in the legacy ``/O=.../CN=...`` form, and anything a client tried to
  send under that name is removed first;
* the route: the server dispatches on ``SCRIPT_NAME``
  (``/api/v1/<module>/<method>``), so the whole path goes there.

Runs in the server's own virtualenv (gunicorn imports it by name).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pandaserver.server.panda import application as panda_application

_CLIENT_KEYS = ("SSL_CLIENT", "GRST_", "HTTP_SSL_CLIENT", "HTTP_GRST")


def _dn(cert: dict[str, Any]) -> str:
    parts = []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            short = {"organizationName": "O", "organizationalUnitName": "OU", "commonName": "CN",
                     "countryName": "C", "localityName": "L", "domainComponent": "DC"}.get(key, key)
            parts.append(f"/{short}={value}")
    return "".join(parts)


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    for key in [k for k in environ if k.startswith(_CLIENT_KEYS)]:
        del environ[key]
    sock = environ.get("gunicorn.socket")
    cert = sock.getpeercert() if hasattr(sock, "getpeercert") else None
    if cert:
        environ["SSL_CLIENT_S_DN"] = _dn(cert)
        environ["SSL_CLIENT_VERIFY"] = "SUCCESS"
    environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    environ["PATH_INFO"] = ""
    return panda_application(environ, start_response)
