#!/bin/bash
# Host packages for the container contract tests (tests/container): debootstrap
# makes the Debian-sid root that carries Apptainer (container/apptainer-root.sh,
# called by container/build.sh from the test itself, cached under /var/tmp).
set -euo pipefail
source "$(dirname "$0")/apt.sh"
apt_install debootstrap
