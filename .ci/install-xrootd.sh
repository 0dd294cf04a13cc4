#!/bin/bash
# The servers around the Rucio test server (tests/data/): Debian's XRootD 5.5
# server and client (xrdcp, xrdfs, xrdadler32) and PostgreSQL 15 for Rucio's
# database.  Nothing is started here; the pytest fixtures start PostgreSQL,
# XRootD (as the xrootd user) and Rucio (.ci/install-rucio.sh).
set -euo pipefail
source "$(dirname "$0")/apt.sh"
apt_install postgresql-15 xrootd-server xrootd-client
