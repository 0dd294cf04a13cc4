#!/bin/bash
# The OpenID Connect provider of the sign-in tests (tests/access/test_oidc*.py):
# npm `oidc-provider`, pinned in tests/oidc/package.json (and package-lock.json),
# installed into tests/oidc/node_modules; the tests start tests/oidc/provider.mjs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v npm > /dev/null; then
    source "$here/apt.sh"
    apt_install nodejs npm
fi
cd "$here/../tests/oidc"
if [ ! -f node_modules/oidc-provider/package.json ] \
    || [ "$(node -p "require('./node_modules/oidc-provider/package.json').version")" != 9.13.3 ]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
