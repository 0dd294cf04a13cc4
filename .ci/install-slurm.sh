#!/bin/bash
# Packages for the real single-node Slurm cluster the tests start themselves
# (tests/backends/slurm_cluster.py): slurmctld + slurmd + munge for the plain
# cluster, slurmdbd + MariaDB for the accounting variant.  Services are NOT
# started here; the pytest fixture starts and stops them under a tmp dir.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(slurm-wlm slurm-client slurmdbd munge mariadb-server)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit)" ] || apt-get update -qq
    # policy-rc.d keeps the packages' own services from starting system-wide
    had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ "$had_policy" = 1 ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
    [ "$had_policy" = 1 ] || rm -f /usr/sbin/policy-rc.d
fi
