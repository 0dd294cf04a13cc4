#!/bin/bash
# Build hc.sif from hc.def: the one command.
#
# usage: container/build.sh [OUTPUT [BUILD-OPTION...]]
#   OUTPUT defaults to hc.sif at the top of the tree; BUILD-OPTIONs go to
#   `apptainer build` (e.g. --notest).
#
# Prepares the wheelhouse (container/wheelhouse.sh; reused offline when complete),
# reads the Debian mirror from this machine's apt sources (HC_DEBIAN_MIRROR
# overrides it) and passes it to hc.def as a build argument.  With an apptainer
# on PATH it builds natively (--fakeroot when not root).  Without one, as root
# on a Debian host (CI, this project's machines), it builds inside the Debian-sid
# root of container/apptainer-root.sh as the unprivileged user "hcbuild" with
# --fakeroot, because a root build misses a capability there.
set -euo pipefail
cd "$(dirname "$0")/.."

out=$(realpath -m "${1:-hc.sif}")
[ $# -gt 0 ] && shift
suite=${HC_IMAGE_SUITE:-trixie}
build_user=hcbuild
build_uid=${HC_BUILD_UID:-1501}
t0=$(date +%s)

container/wheelhouse.sh
mirror=$(container/apptainer-root.sh mirror)
wheel=$(basename container/work/wheelhouse/hcflask-*.whl)
version=$(echo "$wheel" | cut -d- -f2)
# gzip: every Apptainer and Singularity mounts it, also a setuid one on an older kernel
# whose squashfs lacks zstd; HC_MKSQUASHFS_ARGS="-comp zstd -Xcompression-level 19" gives an
# image ~10 % smaller for sites that can mount it (docs/container.md)
squash=${HC_MKSQUASHFS_ARGS:--comp gzip}
args=(build --force --mksquashfs-args "$squash" --build-arg "suite=$suite" --build-arg "mirror=$mirror"
      --build-arg "version=$version" "$@")

if command -v apptainer > /dev/null && apptainer --version > /dev/null 2>&1; then
    command -v debootstrap > /dev/null \
        || { echo "build: hc.def bootstraps Debian with debootstrap: install it (Debian/Ubuntu, EPEL)" >&2; exit 1; }
    if [ "$(id -u)" = 0 ]; then
        apptainer "${args[@]}" "$out" hc.def
    else
        apptainer "${args[@]}" --fakeroot "$out" hc.def
    fi
else
    [ "$(id -u)" = 0 ] || { echo "build: no apptainer on PATH; run as root to use the Debian-sid root" >&2; exit 1; }
    container/apptainer-root.sh ensure
    container/apptainer-root.sh adduser "$build_user" "$build_uid"
    stage="$PWD/container/work/build"
    mkdir -p "$stage"
    chown "$build_uid" "$stage"
    container/apptainer-root.sh exec --user "$build_user" --bind "$PWD" --cwd "$PWD" -- \
        apptainer "${args[@]}" --fakeroot "$stage/hc.sif" hc.def
    mv "$stage/hc.sif" "$out"
fi

size=$(du -m "$out" | cut -f1)
echo "build: $out is ${size} MB, built in $(( $(date +%s) - t0 )) s"
