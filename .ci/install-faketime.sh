#!/bin/bash
# libfaketime for the clock-skew test (tests/test_clock_skew.py): Debian's
# package; the test runs one hc serve under it, 15 minutes off the database.
set -euo pipefail
source "$(dirname "$0")/apt.sh"
apt_install faketime libfaketime
