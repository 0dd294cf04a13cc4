#!/bin/bash
# Stage every wheel the image installs into container/work/wheelhouse.
#
# Why: the image build must not reach PyPI (an air-gapped build host, and here
# pip inside a build cannot verify the registry's certificate).  hc.def copies
# this folder in with %files and installs with --no-index --require-hashes, so
# the image holds exactly container/requirements.lock.  The wheels are chosen
# for the image's Python, not the host's (HC_IMAGE_PYTHON, default 3.13 for
# Debian trixie), so any host Python can prepare them.
#
# panda-client publishes only an sdist: the lock pins the sdist's hash, and it
# is built here into a wheel (hatchling, kept in container/work/build-tools),
# which hc.def installs next to hcflask's own wheel.  panda-client and
# rucio-clients are locked with their Client libraries' dependencies only
# (hc.def installs both --no-deps), not those of their command-line tools.
#
# usage: container/wheelhouse.sh [--relock]
#   --relock   resolve hcflask's dependencies again and rewrite the lock file
# An existing complete wheelhouse (and container/work/build-tools, the build
# backend for hcflask's own wheel) is reused without any network access:
# copy container/work to an air-gapped build host.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${HC_IMAGE_PYTHON:-3.13}
PIP_PIN=pip==25.3
SETUPTOOLS_PIN=setuptools==80.9.0
WHEEL_PIN=wheel==0.45.1
HATCHLING_PIN=hatchling==1.33.0
PANDA_PIN=panda-client==2.2.0   # used by --relock only; the lock says which one is built
# what panda-client's Client library imports (hcflask's panda backend uses nothing else); its
# command-line tools' dependencies (typer, rich, pydantic, pygments: ~20 MB) stay out of the image
PANDA_LIBRARY_DEPS=(certifi httpx)
# rucio-clients (hcflask[data]) the same way: the wheel without its dependencies, plus what its
# Client library imports (hcflask's replica lookups use nothing else); the dependencies of its
# `rucio` command (rich, pygments, jsonschema, tabulate: ~4.5 MiB of the gzip image) stay out
RUCIO_PIN=rucio-clients==41.5.1   # used by --relock only, like PANDA_PIN
RUCIO_LIBRARY_DEPS=(dogpile.cache requests urllib3 packaging typing_extensions)
LOCK=container/requirements.lock
WH=container/work/wheelhouse
TOOLS=container/work/build-tools
ARCH=$(uname -m)
abi=cp${PY/./}
target=(--only-binary=:all: --python-version "$PY" --implementation cp --abi "$abi"
        --platform "manylinux_2_28_$ARCH" --platform "manylinux_2_17_$ARCH" --platform "manylinux2014_$ARCH")
pipq=(python3 -m pip --disable-pip-version-check -q)

mkdir -p "$WH" "$TOOLS"
# hcflask's own wheel, built offline from the build backend kept in $TOOLS
ls "$TOOLS"/setuptools-*.whl "$TOOLS"/wheel-*.whl "$TOOLS"/hatchling-*.whl > /dev/null 2>&1 \
    || "${pipq[@]}" download --only-binary=:all: -d "$TOOLS" "$SETUPTOOLS_PIN" "$WHEEL_PIN" "$HATCHLING_PIN" \
        2> >(grep -v "^WARNING: Location" >&2)
rm -f "$WH"/hcflask-*.whl
"${pipq[@]}" wheel --no-deps --no-index --find-links "$TOOLS" -w "$WH" . 2> >(grep -v "^WARNING: Location" >&2)
wheel=$(ls "$WH"/hcflask-*.whl)

# panda-client: the pinned sdist (offline when already here), built into a wheel
SDIST=container/work/sdist
mkdir -p "$SDIST"
build_panda() {
    # $1: a requirements file naming the one panda-client sdist (with its hash, or not yet)
    local version
    version=$(sed -n 's/^panda-client==\([^ ]*\).*/\1/p' "$1")
    if ! "${pipq[@]}" download --no-index --find-links "$SDIST" --no-deps --no-binary :all: -d "$SDIST" \
            -r "$1" > /dev/null 2>&1; then
        "${pipq[@]}" download --no-deps --no-binary :all: -d "$SDIST" -r "$1" 2> >(grep -v "^WARNING: Location" >&2)
    fi
    rm -f "$WH"/panda_client-*.whl
    "${pipq[@]}" wheel --no-deps --no-index --find-links "$TOOLS" -w "$WH" "$SDIST/panda_client-$version.tar.gz" \
        2> >(grep -v "^WARNING: Location" >&2)
}

if [ "${1:-}" = --relock ] || [ ! -s "$LOCK" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "$PANDA_PIN" > "$tmp/panda.txt"
    build_panda "$tmp/panda.txt"
    "${pipq[@]}" download "${target[@]}" -d "$tmp" "$wheel" "${PANDA_LIBRARY_DEPS[@]}" "${RUCIO_LIBRARY_DEPS[@]}" \
        2> >(grep -v "^WARNING: Location" >&2)
    "${pipq[@]}" download "${target[@]}" --no-deps -d "$tmp" "$RUCIO_PIN" 2> >(grep -v "^WARNING: Location" >&2)
    {
        echo "# hcflask's run-time dependencies for the image (Python $PY), pinned with hashes."
        echo "# panda-client ships only an sdist: its line pins the sdist, which wheelhouse.sh builds into a wheel;"
        echo "# only the dependencies of its Client library (httpx) are here, not those of its command-line tools."
        echo "# rucio-clients likewise: only the dependencies of its Client library (dogpile.cache), not those of its rucio command."
        echo "# Regenerate with: container/wheelhouse.sh --relock"
        echo "$PANDA_PIN --hash=sha256:$(sha256sum "$SDIST/panda_client-${PANDA_PIN#*==}.tar.gz" | cut -d' ' -f1)"
        for f in "$tmp"/*.whl; do
            base=$(basename "$f")
            case $base in hcflask-*|panda_client-*) continue ;; esac
            name=${base%%-*}
            version=$(echo "$base" | cut -d- -f2)
            hash=$(sha256sum "$f" | cut -d' ' -f1)
            name=${name,,}
            echo "${name//_/-}==$version --hash=sha256:$hash"
        done | sort
    } > "$LOCK"
    echo "wheelhouse: wrote $LOCK" >&2
fi

grep '^panda-client==' "$LOCK" > container/work/requirements-sdist.lock
build_panda container/work/requirements-sdist.lock   # --require-hashes is implied by the hash in it
binaries=container/work/requirements-wheels.lock
grep -v '^panda-client==' "$LOCK" > "$binaries"

# Offline first: a wheelhouse that already holds the lock needs no network.
if ! "${pipq[@]}" download "${target[@]}" --no-index --find-links "$WH" --no-deps --require-hashes \
        -r "$binaries" -d "$WH" > /dev/null 2>&1; then
    "${pipq[@]}" download "${target[@]}" --no-deps --require-hashes -r "$binaries" -d "$WH" \
        2> >(grep -v "^WARNING: Location" >&2)
fi
find "$WH" -name 'pip-*.whl' ! -name "pip-${PIP_PIN#pip==}-*" -delete
ls "$WH"/pip-"${PIP_PIN#pip==}"-*.whl > /dev/null 2>&1 \
    || "${pipq[@]}" download --no-deps --only-binary=:all: -d "$WH" "$PIP_PIN" 2> >(grep -v "^WARNING: Location" >&2)

# The lock must cover what hcflask asks for: resolve from the wheelhouse alone.
check=$(mktemp -d)
"${pipq[@]}" download "${target[@]}" --no-index --find-links "$WH" -d "$check" "$wheel" \
    || { rm -rf "$check"; echo "wheelhouse: $LOCK misses a dependency of hcflask: run with --relock" >&2; exit 1; }
rm -rf "$check"
echo "wheelhouse: $(find "$WH" -name '*.whl' | wc -l) wheels, $(du -sh "$WH" | cut -f1) in $WH" >&2
