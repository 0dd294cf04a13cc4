# Sourced by the .ci/install-*.sh scripts: install the Debian packages that
# are missing, quietly, without letting their services start system-wide
# (the tests start their own daemons under temporary folders).
#
# Every install-*.sh calls apt_install FIRST (with no package if it needs
# none), so install.sh can ask each script for its packages and install them
# all in ONE apt-get call: with HC_APT_COLLECT=<file>, apt_install appends
# the missing packages to <file> and ends the script there.
export DEBIAN_FRONTEND=noninteractive

apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ -n "${HC_APT_COLLECT:-}" ]; then
        [ "${#missing[@]}" -eq 0 ] || printf '%s\n' "${missing[@]}" >> "$HC_APT_COLLECT"
        exit 0
    fi
    [ "${#missing[@]}" -gt 0 ] || return 0
    # other apt users (engineers, unattended upgrades) get waited for, not failed on
    local apt=(apt-get -o DPkg::Lock::Timeout=600)
    if [ -n "${HC_APT_UPDATE:-}" ] \
        || [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit)" ]; then
        "${apt[@]}" update -qq
    fi
    local had_policy=0
    [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ "$had_policy" = 1 ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    # stale package lists (a machine kept for a while) get one refresh and a retry
    local rc=0
    "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" > /dev/null \
        || { "${apt[@]}" update -qq && "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" > /dev/null; } \
        || rc=$?
    [ "$had_policy" = 1 ] || rm -f /usr/sbin/policy-rc.d
    return "$rc"
}
