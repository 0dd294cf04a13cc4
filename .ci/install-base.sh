#!/bin/bash
# Packages the core suite needs: headless Chromium for the browser test.
set -euo pipefail
apt-get install -y -qq --no-install-recommends chromium chromium-driver > /dev/null
