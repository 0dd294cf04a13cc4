#!/bin/bash
# The OpenID Connect provider of the sign-in tests (tests/access/test_oidc*.py):
# npm `oidc-provider`, pinned in tests/oidc/package.json (and package-lock.json),
# installed into tests/oidc/node_modules; the tests start tests/oidc/provider.mjs.
# Debian's nodejs and npm only where no npm is installed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/apt.sh"
# shellcheck disable=SC2046 # no word, or two package names
apt_build $(command -v npm > /dev/null || echo nodejs npm)
apt_install
cd "$here/../tests/oidc"
if [ ! -f node_modules/oidc-provider/package.json ] \
    || [ "$(node -p "require('./node_modules/oidc-provider/package.json').version")" != 9.13.3 ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
