#!/bin/bash
# Install what the tests need (Debian packages, the PanDA test server's
# virtualenv): every .ci/install-*.sh, each idempotent and quick when done.
# tox runs this first, so `tox` alone works on a fresh machine; it needs
# root for apt-get.  Without root it only says what it skipped: the tests
# then skip the missing parts (and fail in CI, where CI=true).
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then
    echo "hcflask tests: not root, so not installing Slurm, PostgreSQL, PanDA, Chromium, debootstrap;" \
         "run 'sudo bash .ci/install.sh' once for the full suite" >&2
    exit 0
fi
for script in install-*.sh; do
    echo "== .ci/$script"
    bash "$script"
done
