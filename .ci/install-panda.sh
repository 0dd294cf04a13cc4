#!/bin/bash
# The real PanDA server the panda tests start (tests/panda_server/): Debian's
# PostgreSQL 15 and openssl, and panda-server in its OWN virtualenv (its
# dependencies make ~670 MB that hcflask must not share).  Idempotent: a
# working venv is kept.  Nothing is started here; the pytest fixture starts
# the database, the server, the adder daemon and the test pilot itself.
set -euo pipefail
VENV="${HC_TEST_PANDA_VENV:-/opt/hc-panda/venv}"

source "$(dirname "$0")/apt.sh"
# apache2-dev: mod_wsgi (a dependency of panda-server) builds against apxs
apt_build apache2-dev
apt_install postgresql-15 openssl

if PANDA_BEHIND_REAL_LB=1 "$VENV/bin/python" -c "import pandaserver.server, pandaclient.Client, psycopg2, gunicorn" 2>/dev/null; then
    exit 0
fi
# panda-server's build hook looks up the service account atlpan:zp
if [ "$(id -u)" = 0 ]; then
    getent group zp > /dev/null || groupadd -r zp
    id atlpan > /dev/null 2>&1 || useradd -r -g zp -M -s /usr/sbin/nologin atlpan
fi
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check \
    'panda-server[postgres]>=1.0.4,<1.1' 'panda-client>=2.2' gunicorn 2>&1 | grep -v "^WARNING: Location" || true
PANDA_BEHIND_REAL_LB=1 "$VENV/bin/python" -c "import pandaserver.server, pandaclient.Client, psycopg2, gunicorn"
