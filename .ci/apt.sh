# Sourced by the .ci/install-*.sh scripts: install the Debian packages that
# are missing, quietly, without letting their services start system-wide
# (the tests start their own daemons under temporary folders).
export DEBIAN_FRONTEND=noninteractive

apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit)" ] || apt-get update -qq
    local had_policy=0
    [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ "$had_policy" = 1 ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    # stale package lists (a machine kept for a while) get one refresh and a retry
    apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null \
        || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null; }
    [ "$had_policy" = 1 ] || rm -f /usr/sbin/policy-rc.d
}
