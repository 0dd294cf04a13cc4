#!/bin/bash
# Install what the tests need (Debian packages, the PanDA and Rucio test
# servers' virtualenvs, the OIDC provider's npm package): every
# .ci/install-*.sh, each idempotent and quick when done.
# tox runs this first, so `tox` alone works on a fresh machine; it needs
# root for apt-get.  Without root it only says what it skipped: the tests
# then skip the missing parts (and fail in CI, where CI=true).
#
# Fast on a fresh machine: each script's Debian packages are collected first
# (apt.sh's HC_APT_COLLECT) and installed in two apt-get calls: the few a
# script's own build step needs (apt_build: Apache's apxs for the PanDA
# server's mod_wsgi), then all the others, while those builds and the
# scripts that need no package (Rucio's virtualenv, npm) run.  The
# apt-only scripts run last (then quick).  Each script's output goes to its
# own log, shown when it ends; any failure fails the whole.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then
    echo "hcflask tests: not root, so not installing Slurm, PostgreSQL, PanDA, Chromium, debootstrap;" \
         "run 'sudo bash .ci/install.sh' once for the full suite" >&2
    exit 0
fi
# one at a time: `tox p` starts this in two environments at once, and two
# builds of one virtualenv would spoil it (the second finds everything done)
exec 9> "${HC_CI_LOCK:-/tmp/hcflask-ci-install.lock}"  # another path: tests/test_ci.py
flock 9
source ./apt.sh
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

declare -A packages=() builds=()
for script in install-*.sh; do
    HC_APT_COLLECT="$logs/$script.apt" bash "$script"
    packages[$script]="$(cat "$logs/$script.apt" 2>/dev/null || true)"
    builds[$script]="$(cat "$logs/$script.apt.build" 2>/dev/null || true)"
done

note_time() {  # for .ci/run's table of times
    [ -z "${HC_CI_TIMES:-}" ] || printf '%s\t%s\n' "$1" "$2" >> "$HC_CI_TIMES.install"
}
declare -A pids=()
start() {  # run one script in the background, its output in its log
    local script=$1
    ( SECONDS=0; rc=0; bash "$script" > "$logs/$script.log" 2>&1 || rc=$?
      echo "$SECONDS" > "$logs/$script.seconds"; exit "$rc" ) &
    pids[$script]=$!
}
failed=0
finish() {  # wait for the started scripts, show their output and time
    local script
    for script in install-*.sh; do
        [ -n "${pids[$script]:-}" ] || continue
        outcome=""
        wait "${pids[$script]}" || { outcome=" FAILED"; failed=1; }
        seconds="$(cat "$logs/$script.seconds" 2>/dev/null || echo '?')"
        echo "== .ci/$script ($seconds s)$outcome"
        cat "$logs/$script.log"
        note_time "  .ci/$script" "$seconds"
    done
    pids=()
}

apt_step() {  # one apt-get call for these packages (words), timed
    local wanted=$1 what=$2
    [ -n "$wanted" ] || return 0
    SECONDS=0
    # shellcheck disable=SC2086 # one package a word
    if apt_get_install $wanted; then
        echo "== apt-get install, $what: $(echo $wanted | wc -w) packages ($SECONDS s)"
        note_time "  apt-get install, $what ($(echo $wanted | wc -w) packages)" "$SECONDS"
        unset HC_APT_UPDATE  # the lists are fresh now
    else
        echo "== apt-get install FAILED: $wanted" >&2
        finish
        exit 1
    fi
}

for script in install-*.sh; do  # no package at all: right away
    [ -n "${builds[$script]}${packages[$script]}" ] || start "$script"
done
apt_step "$(printf '%s\n' "${builds[@]}" | sort -u | grep . || true)" "for builds"
for script in install-*.sh; do  # the builds: their other packages are installed meanwhile
    [ -z "${builds[$script]}" ] || HC_APT_DEFERRED=1 start "$script"
done
apt_step "$(printf '%s\n' "${packages[@]}" | sort -u | grep . || true)" "the rest"
for script in install-*.sh; do
    [ -n "${pids[$script]:-}" ] || start "$script"
done
finish
exit "$failed"
