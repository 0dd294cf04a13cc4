#!/bin/bash
# Install what the tests need (Debian packages, the PanDA and Rucio test
# servers' virtualenvs, the OIDC provider's npm package): every
# .ci/install-*.sh, each idempotent and quick when done.
# tox runs this first, so `tox` alone works on a fresh machine; it needs
# root for apt-get.  Without root it only says what it skipped: the tests
# then skip the missing parts (and fail in CI, where CI=true).
#
# Fast on a fresh machine: each script's Debian packages are collected first
# (apt.sh's HC_APT_COLLECT) and installed in ONE apt-get call; the scripts
# that need no package (their pip or npm step) run meanwhile, the others
# right after it, side by side.  Each script's output goes to its own log,
# shown when it ends; the first failure fails the whole.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then
    echo "hcflask tests: not root, so not installing Slurm, PostgreSQL, PanDA, Chromium, debootstrap;" \
         "run 'sudo bash .ci/install.sh' once for the full suite" >&2
    exit 0
fi
source ./apt.sh
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

declare -A packages=()
for script in install-*.sh; do
    HC_APT_COLLECT="$logs/$script.apt" bash "$script"
    packages[$script]="$(cat "$logs/$script.apt" 2>/dev/null || true)"
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

for script in install-*.sh; do
    [ -n "${packages[$script]}" ] || start "$script"
done
wanted="$(printf '%s\n' "${packages[@]}" | sort -u | grep . || true)"
if [ -n "$wanted" ]; then
    SECONDS=0
    # shellcheck disable=SC2086 # one package a word
    if apt_install $wanted; then
        echo "== apt-get install: $(echo $wanted | wc -w) packages ($SECONDS s)"
        note_time "  apt-get install ($(echo $wanted | wc -w) packages)" "$SECONDS"
    else
        echo "== apt-get install FAILED: $wanted" >&2
        finish
        exit 1
    fi
fi
for script in install-*.sh; do
    [ -z "${packages[$script]}" ] || start "$script"
done
finish
exit "$failed"
