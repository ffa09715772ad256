#!/usr/bin/env bash
# Runs a program as MPI ranks on this machine with the Open MPI settings Loom's tests need in a container or
# CI runner: the one place they are written down. Every argument goes to mpirun after them.
#
#   tests/distributed/mpirun.sh -np 2 PROGRAM [ARGS...]
#   tests/distributed/mpirun.sh -np 2 build/bin/loom run configs/distributed-cpu.toml
#   tests/distributed/mpirun.sh -np 2 --timeout 60 build/tests/comm_check all-reduce --set bucket_mb=0.05
#   tests/distributed/mpirun.sh -np 2 --enable-recovery build/tests/comm_check timeout-exit --set timeout_s=2
#
# The settings (Open MPI 4.1, Debian's openmpi-bin):
#   --allow-run-as-root       CI containers run as root, which mpirun refuses by default
#   --oversubscribe           more ranks than cores (CI machines have 2)
#   --bind-to none            no pinning: with other work on the machine a pinned rank waits for its one core
#   --mca btl self,vader      shared memory only, the ranks are on one host: no probing of network interfaces
#                             (slow, and noisy in containers)
#   --mca btl_vader_single_copy_mechanism none
#                             containers often forbid cross-process memory access (CMA needs ptrace
#                             rights); copy through the shared segment instead. That costs bandwidth on
#                             large messages, so for benchmarks on a machine where CMA works set
#                             LOOM_MPI_SINGLE_COPY=cma
# Useful extras: --timeout SECONDS (mpirun ends the job after that long), --enable-recovery (the other ranks
# live on when one exits, so their own timeout handling can be tested).
set -euo pipefail
MPIRUN=${MPIRUN:-mpirun}
if ! command -v "$MPIRUN" >/dev/null; then
  echo "mpirun.sh: '$MPIRUN' not found; install openmpi-bin (scripts/setup.sh does)" >&2
  exit 2
fi
exec "$MPIRUN" --allow-run-as-root --oversubscribe --bind-to none \
  --mca btl self,vader --mca btl_vader_single_copy_mechanism "${LOOM_MPI_SINGLE_COPY:-none}" "$@"
