#!/bin/bash
# What the catalogue's probes use on the test node (hcflask/catalog/probes/):
# fio for scratch-io (the probe falls back to dd without it), OpenMPI for the
# mpi probe (mpicc builds its hello/ping-pong; srun starts the two tasks
# through Slurm's PMIx, or mpirun on the local backend).  Idempotent.
set -euo pipefail
source "$(dirname "$0")/apt.sh"
apt_install fio openmpi-bin libopenmpi-dev
