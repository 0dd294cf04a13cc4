#!/bin/bash
# Print the --bind list that lets hc.sif use this login node's own Slurm.
#
# Why: the image carries no Slurm, so its client always matches the site's
# controller: the host's commands, the library directory that holds
# libslurmfull and the plugins, libmunge (for auth_munge), the configuration
# and the munge socket are bound in at their own paths.
#
# usage:
#   apptainer run --bind "$(container/slurm-binds.sh)" \
#       --bind "$PWD/instance" --env HC_INSTANCE="$PWD/instance" hc.sif
# The configuration is read from $SLURM_CONF's folder, else /etc/slurm; the
# munge socket folder from $HC_MUNGE_DIR, else /run/munge or /var/run/munge.
set -euo pipefail

paths=()
for command in sbatch squeue sacct scancel scontrol sinfo; do
    path=$(command -v "$command") || { echo "slurm-binds: $command not found on PATH" >&2; exit 1; }
    paths+=("$path")
done

libslurm=$(ldd "${paths[0]}" | awk '$1 ~ /^libslurm/ && $3 ~ /^\// {print $3; exit}')
[ -n "$libslurm" ] || { echo "slurm-binds: sbatch links no libslurm" >&2; exit 1; }
libdir=$(dirname "$libslurm")
paths+=("$libdir")
if [ -e "$libdir/auth_munge.so" ]; then
    munge=$(ldd "$libdir/auth_munge.so" | awk '$1 ~ /^libmunge/ && $3 ~ /^\// {print $3; exit}')
    [ -z "$munge" ] || paths+=("$munge")
fi

if [ -n "${SLURM_CONF:-}" ]; then
    paths+=("$(dirname "$SLURM_CONF")")
elif [ -d /etc/slurm ]; then
    paths+=(/etc/slurm)
fi
for dir in "${HC_MUNGE_DIR:-}" /run/munge /var/run/munge; do
    if [ -n "$dir" ] && [ -d "$dir" ]; then
        paths+=("$(readlink -f "$dir")")
        break
    fi
done

(IFS=,; echo "${paths[*]}")
