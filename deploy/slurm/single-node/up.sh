#!/usr/bin/env bash
# Start a one-node SLURM (munged, slurmctld, slurmd) on this Debian machine, as root.
# Installs slurm-wlm and munge with apt if they are missing. Stop it with down.sh.
# Used by .ci/run for the SLURM integration test (tests/deploy/test_slurm.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ]; then echo "up.sh: needs root (starts system daemons)" >&2; exit 1; fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
install -d -o munge -g munge -m0755 /run/munge /var/lib/munge /var/log/munge
[ -s /etc/munge/munge.key ] || { runuser -u munge -- /usr/sbin/mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; }
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged --force
mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /etc/slurm
cpus=$(nproc)
memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
sed -e "s/@CPUS@/$cpus/" -e "s/@MEMORY_MB@/$memory_mb/" "$here/slurm.conf" >/etc/slurm/slurm.conf
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd -N localhost
for _ in $(seq 1 30); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "SLURM up: partition debug, node localhost, $cpus CPUs, $memory_mb MB"; exit 0
  fi
  sleep 1
done
echo "up.sh: SLURM did not come up; see /var/log/slurm/" >&2
exit 1
