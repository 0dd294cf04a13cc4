#!/bin/bash
# A Debian-sid root file system that carries the real Apptainer, and the way in.
#
# Why: Apptainer is not in Debian stable and the host's libc is too old for the
# package from unstable, so Apptainer runs from a root file system of its own,
# made once with debootstrap and reused.  Plain chroot is refused by Apptainer
# ("weak chrooted environment"), so the root is entered in a private mount
# namespace with pivot_root.  Building as root misses a capability here, so
# builds run as an unprivileged user with --fakeroot (needs /etc/subuid and
# /etc/subgid entries, and /etc/hosts, inside the root).
#
# usage:
#   apptainer-root.sh ensure                 make the root (cached: reused when ready)
#   apptainer-root.sh adduser NAME UID       an unprivileged user with subuid/subgid ranges
#   apptainer-root.sh exec [--user NAME] [--bind SRC[:DST]]... [--cwd DIR] -- CMD [ARG]...
#   apptainer-root.sh mirror                 print the Debian mirror the host's apt uses
#
# --bind SRC mounts the host's file or folder SRC at the same path inside the
# root, so paths mean the same on both sides (SRC:DST at another path).  Environment: HC_APPTAINER_ROOT (where the root
# lives, default /var/tmp/hcflask-apptainer-root), HC_DEBIAN_MIRROR (overrides
# the mirror read from apt).  Must run as root on the host.
set -euo pipefail

ROOT=${HC_APPTAINER_ROOT:-/var/tmp/hcflask-apptainer-root}
PACKAGES=apptainer,debootstrap,ca-certificates,uidmap,passwd,mount,squashfs-tools,fuse3,squashfuse
SELF=$(readlink -f "$0")

die() { echo "apptainer-root: $*" >&2; exit 1; }

host_mirror() {
    # The mirror of the host's own Debian main suite, whatever the sources' format.
    if [ -n "${HC_DEBIAN_MIRROR:-}" ]; then echo "$HC_DEBIAN_MIRROR"; return; fi
    local uri
    # shellcheck disable=SC2016 # $(...) here is apt's own field syntax
    uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(LABEL)' \
        | awk '$3 == "Debian" && $2 !~ /-/ {print $1; exit}')
    [ -n "$uri" ] || die "no Debian mirror in the host's apt sources (run apt-get update first?)"
    echo "${uri%/}"
}

ensure() {
    if [ -e "$ROOT/.hc-ready" ]; then return; fi
    exec 9> "$ROOT.lock"
    flock 9
    if [ -e "$ROOT/.hc-ready" ]; then return; fi
    command -v debootstrap > /dev/null || die "debootstrap missing on the host (.ci/install-apptainer.sh installs it)"
    local mirror tmp
    mirror=$(host_mirror)
    tmp="$ROOT.partial"
    rm -rf "$tmp"
    echo "apptainer-root: debootstrap sid from $mirror into $ROOT" >&2
    debootstrap --variant=minbase --include="$PACKAGES" sid "$tmp" "$mirror" > "$tmp.log" 2>&1 \
        || { tail -20 "$tmp.log" >&2; die "debootstrap failed (log: $tmp.log)"; }
    # Fail loudly, never skip, if Debian unstable ever stops shipping Apptainer.
    [ -x "$tmp/usr/bin/apptainer" ] || die "no /usr/bin/apptainer in the sid root: is apptainer still in Debian unstable?"
    cp /etc/hosts "$tmp/etc/hosts"
    echo "deb $mirror sid main" > "$tmp/etc/apt/sources.list"
    rm -rf "$tmp/var/cache/apt/archives/"*.deb
    touch "$tmp/.hc-ready"
    rm -rf "$ROOT"
    mv "$tmp" "$ROOT"
    rm -f "$tmp.log"
}

adduser_in_root() {
    local name=$1 uid=$2
    [ -e "$ROOT/.hc-ready" ] || die "no root at $ROOT: run '$0 ensure' first"
    if ! chroot "$ROOT" getent passwd "$name" > /dev/null; then
        chroot "$ROOT" useradd --create-home --uid "$uid" --user-group --shell /bin/bash "$name"
    fi
    local start=$((100000 + uid * 65536))
    for f in subuid subgid; do
        grep -q "^$name:" "$ROOT/etc/$f" 2> /dev/null || echo "$name:$start:65536" >> "$ROOT/etc/$f"
    done
}

inner() {
    # Runs in the new mount namespace: mount what Apptainer needs, pivot, exec.
    local user="" cwd=/ binds=()
    while [ $# -gt 0 ]; do
        case $1 in
            --user) user=$2; shift 2 ;;
            --bind) binds+=("$2"); shift 2 ;;
            --cwd) cwd=$2; shift 2 ;;
            --) shift; break ;;
            *) die "unknown option $1" ;;
        esac
    done
    [ $# -gt 0 ] || die "exec needs a command after --"
    mount --bind "$ROOT" "$ROOT"
    mount -t proc proc "$ROOT/proc"
    mount --rbind /sys "$ROOT/sys"
    mount --rbind /dev "$ROOT/dev"
    if [ -c /dev/fuse ]; then
        # Unprivileged Apptainer mounts the SIF with squashfuse.  A usual host has
        # /dev/fuse open to all (0666); where it is 0600, the root gets its own
        # node with the usual mode and the host's stays untouched.
        rm -f "$ROOT/.hc-fuse"
        mknod -m 666 "$ROOT/.hc-fuse" c 10 229
        mount --bind "$ROOT/.hc-fuse" "$ROOT/dev/fuse"
    fi
    mount -t tmpfs -o mode=1777 tmpfs "$ROOT/tmp"
    mount -t tmpfs -o mode=755 tmpfs "$ROOT/run"
    cp /etc/hosts "$ROOT/etc/hosts"
    local b src dst
    for b in "${binds[@]}"; do
        src=${b%%:*}
        dst=${b#*:}
        if [ -d "$src" ]; then
            mkdir -p "$ROOT$dst"
        else
            mkdir -p "$(dirname "$ROOT$dst")"
            [ -e "$ROOT$dst" ] || touch "$ROOT$dst"
        fi
        mount --rbind "$src" "$ROOT$dst"
    done
    mkdir -p "$ROOT/.oldroot"
    cd "$ROOT"
    pivot_root . .oldroot
    umount -l /.oldroot
    cd "$cwd"
    local path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    if [ -z "$user" ]; then
        exec env -i PATH="$path" HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@"
    fi
    local home uid
    home=$(getent passwd "$user" | cut -d: -f6)
    uid=$(id -u "$user")
    mkdir -p "/run/user/$uid"
    chown "$user:" "/run/user/$uid"
    exec setpriv --reuid "$user" --regid "$user" --init-groups --reset-env \
        env PATH="$path" HOME="$home" USER="$user" LOGNAME="$user" LANG=C.UTF-8 \
        XDG_RUNTIME_DIR="/run/user/$uid" TERM="${TERM:-dumb}" "$@"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
[ "$cmd" = mirror ] || [ "$(id -u)" = 0 ] || die "run as root on the host"
case $cmd in
    ensure) ensure ;;
    adduser) [ $# -eq 2 ] || die "usage: $0 adduser NAME UID"; adduser_in_root "$1" "$2" ;;
    mirror) host_mirror ;;
    exec)
        [ -e "$ROOT/.hc-ready" ] || die "no root at $ROOT: run '$0 ensure' first"
        exec unshare --mount --propagation private -- "$SELF" __inner "$@" ;;
    __inner) inner "$@" ;;
    *) die "usage: $0 ensure | adduser NAME UID | mirror | exec [--user NAME] [--bind SRC[:DST]]... [--cwd DIR] -- CMD..." ;;
esac
