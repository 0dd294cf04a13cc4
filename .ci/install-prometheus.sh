#!/bin/bash
# Prometheus for the scrape test (tests/web/test_prometheus.py): Debian's
# package; the test starts its own server on a temporary folder and port.
set -euo pipefail
source "$(dirname "$0")/apt.sh"
apt_install prometheus
