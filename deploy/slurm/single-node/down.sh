#!/usr/bin/env bash
# Stop the one-node SLURM started by up.sh (by its pid files); cancels all jobs first.
set -uo pipefail
command -v scancel >/dev/null && scancel --user="$(id -un)" 2>/dev/null
for pidfile in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
  [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
done
sleep 1
echo "SLURM stopped"
