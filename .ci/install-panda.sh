#!/bin/bash
# The real PanDA server the panda tests start (tests/panda_server/): Debian's
# PostgreSQL 15 and openssl, and panda-server in its OWN virtualenv (its
# dependencies make ~670 MB that hcflask must not share).  Idempotent: a
# working venv is kept.  Nothing is started here; the pytest fixture starts
# the database, the server, the adder daemon and the test pilot itself.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
VENV="${HC_TEST_PANDA_VENV:-/opt/hc-panda/venv}"

# apache2-dev: mod_wsgi (a dependency of panda-server) builds against apxs
pkgs=(postgresql-15 openssl apache2-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit)" ] || apt-get update -qq
    # policy-rc.d keeps the package's own cluster service from starting system-wide
    had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ "$had_policy" = 1 ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
    [ "$had_policy" = 1 ] || rm -f /usr/sbin/policy-rc.d
fi

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
