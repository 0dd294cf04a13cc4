#!/bin/bash
# Packages for the real single-node Slurm cluster the tests start themselves
# (tests/backends/slurm_cluster.py): slurmctld + slurmd + munge for the plain
# cluster, slurmdbd + MariaDB for the accounting variant.  Services are NOT
# started here; the pytest fixture starts and stops them under a tmp dir.
set -euo pipefail
source "$(dirname "$0")/apt.sh"
apt_install slurm-wlm slurm-client slurmdbd munge mariadb-server
