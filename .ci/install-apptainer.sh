#!/bin/bash
# Host packages for the container contract tests (tests/container): debootstrap
# makes the Debian-sid root that carries Apptainer (container/apptainer-root.sh,
# called by container/build.sh from the test itself, cached under /var/tmp).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if ! command -v debootstrap > /dev/null; then
    [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit)" ] || apt-get update -qq
    apt-get install -y -qq --no-install-recommends debootstrap > /dev/null
fi
