# Sourced by the .ci/install-*.sh scripts: install the Debian packages that
# are missing, quietly, without letting their services start system-wide
# (the tests start their own daemons under temporary folders).
#
# Every install-*.sh calls apt_install first (with no package if it needs
# none), after apt_build if its next step builds on some packages, so
# install.sh can ask each script for its packages and install them in two
# apt-get calls: a small one of the build packages, after which those
# scripts start, and one of all the rest meanwhile.  With HC_APT_COLLECT=<file>
# apt_build appends its missing packages to <file>.build, apt_install to
# <file>, and ends the script.  With HC_APT_DEFERRED set, apt_install leaves
# its packages to install.sh, which installs them at the same time.
export DEBIAN_FRONTEND=noninteractive

_missing() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

apt_build() {  # packages the script's next step (a build) needs
    if [ -n "${HC_APT_COLLECT:-}" ]; then
        _missing "$@" >> "$HC_APT_COLLECT.build"
        return 0
    fi
    apt_get_install "$@"
}

apt_install() {  # packages the tests need
    if [ -n "${HC_APT_COLLECT:-}" ]; then
        _missing "$@" >> "$HC_APT_COLLECT"
        exit 0
    fi
    [ -z "${HC_APT_DEFERRED:-}" ] || return 0
    apt_get_install "$@"
}

apt_get_install() {
    local missing
    mapfile -t missing < <(_missing "$@")
    [ "${#missing[@]}" -gt 0 ] || return 0
    # other apt users (engineers, unattended upgrades) get waited for, not failed on
    local apt=(apt-get -o DPkg::Lock::Timeout=600)
    if [ -n "${HC_APT_UPDATE:-}" ] \
        || [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit)" ]; then
        "${apt[@]}" update -qq
    fi
    local had_policy=0 policy="${HC_POLICY_RC_D:-/usr/sbin/policy-rc.d}"  # another path: tests/test_ci.py
    [ -e "$policy" ] && had_policy=1
    [ "$had_policy" = 1 ] || printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    # stale package lists (a machine kept for a while) get one refresh and a retry
    local rc=0
    "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" > /dev/null \
        || { "${apt[@]}" update -qq && "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" > /dev/null; } \
        || rc=$?
    [ "$had_policy" = 1 ] || rm -f "$policy"
    return "$rc"
}
