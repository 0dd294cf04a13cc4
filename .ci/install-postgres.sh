#!/bin/bash
# PostgreSQL server binaries for the tests that run hcflask on PostgreSQL
# (the tests start a private server themselves; no system cluster is used).
set -euo pipefail
source "$(dirname "$0")/apt.sh"
apt_install postgresql
