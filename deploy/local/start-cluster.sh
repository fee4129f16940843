#!/usr/bin/env bash
# Start a Dask scheduler and N single-threaded workers on this machine, on loopback.
# Usage: deploy/local/start-cluster.sh [N_WORKERS=2] [PORT=8786] [MEMORY=4GB]
# Then: gbdist soap ... --scheduler tcp://127.0.0.1:PORT   (or cluster.scheduler in a job file)
# Stop with deploy/local/stop-cluster.sh (PIDs are kept in $GBDIST_CLUSTER_DIR, default ./.dask-cluster).
set -euo pipefail
n=${1:-2}; port=${2:-8786}; mem=${3:-4GB}
dir=${GBDIST_CLUSTER_DIR:-.dask-cluster}
mkdir -p "$dir"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
dask scheduler --host 127.0.0.1 --port "$port" --dashboard-address 127.0.0.1:$((port + 1)) \
  >"$dir/scheduler.log" 2>&1 &
echo $! >"$dir/scheduler.pid"
for i in $(seq 1 "$n"); do
  dask worker "tcp://127.0.0.1:$port" --host 127.0.0.1 --nthreads 1 --memory-limit "$mem" \
    --name "w$i" >"$dir/worker-$i.log" 2>&1 &
  echo $! >"$dir/worker-$i.pid"
done
echo "scheduler tcp://127.0.0.1:$port with $n workers; logs and PIDs in $dir"
