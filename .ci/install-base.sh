#!/bin/bash
# Packages the core suite needs: headless Chromium for the browser test.
set -euo pipefail
source "$(dirname "$0")/apt.sh"
apt_install chromium chromium-driver
