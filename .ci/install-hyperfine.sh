#!/bin/bash
# hyperfine for bench/bench_cli.py and its test (tests/test_bench_cli.py): Debian's package.
set -euo pipefail
source "$(dirname "$0")/apt.sh"
apt_install hyperfine
