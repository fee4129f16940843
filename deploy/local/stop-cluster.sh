#!/usr/bin/env bash
# Stop the scheduler and workers started by start-cluster.sh, by their PIDs.
set -uo pipefail
dir=${GBDIST_CLUSTER_DIR:-.dask-cluster}
for f in "$dir"/worker-*.pid "$dir"/scheduler.pid; do
  [ -f "$f" ] || continue
  kill "$(cat "$f")" 2>/dev/null && echo "stopped $(basename "$f" .pid)"
  rm -f "$f"
done
