#!/bin/bash
# The real Rucio server the data tests start (tests/data/), in its OWN
# virtualenv (it pins SQLAlchemy 2.0.x, as the PanDA server has its own).
# Needs no Debian package to install (psycopg's binary wheel brings libpq),
# so install.sh runs it while apt-get works; XRootD and PostgreSQL come from
# .ci/install-xrootd.sh.  Idempotent: a working venv is kept.  Nothing is
# started here; the pytest fixtures start PostgreSQL, XRootD and Rucio.
set -euo pipefail
VENV="${HC_TEST_RUCIO_VENV:-/opt/hc-rucio/venv}"
RUCIO_VERSION="41.5.1"
# importing the server needs a rucio.cfg: only look the modules up
CHECK="import importlib.util as u, psycopg, gunicorn; assert u.find_spec('rucio.web.rest.flaskapi.v1.main')"

source "$(dirname "$0")/apt.sh"
apt_install  # none: see above

if "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
    exit 0
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "rucio[postgresql]==$RUCIO_VERSION" gunicorn 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "$CHECK"
