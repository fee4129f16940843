"""The SLURM path for real: dask-jobqueue submits worker jobs to a one-node SLURM on this
machine (deploy/slurm/single-node/up.sh, which .ci/run starts), and a whole job runs through
the sbatch script. Skipped, with the reason, where no SLURM controller answers."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gbdist.workflows.job import run_job

from conftest import array_digests, make_job, toy_inputs

REPO = Path(__file__).resolve().parents[2]


def _slurm_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0 and any(s.startswith(("idle", "mixed")) for s in out.stdout.split())


pytestmark = pytest.mark.skipif(
    not _slurm_up(),
    reason="no SLURM controller answers here; start one as root with deploy/slurm/single-node/up.sh (.ci/run does)")


def _job_file(path: Path, store: Path, inputs, cluster: dict | None = None) -> Path:
    job = {"store": str(store), "inputs": [str(p) for p in inputs], "chunk_rows": 16,
           "stages": ["soap", "asr", "lae"]}  # leaders follow the row order, whatever the workers
    if cluster:
        job["cluster"] = cluster
    path.write_text(yaml.safe_dump(job))
    return path


def test_soap_job_on_slurm_worker_jobs(tmp_path, scheduler_address):
    inputs = toy_inputs(tmp_path, 4, seed=40)
    reference = tmp_path / "local.zarr"
    run_job(make_job(reference, inputs, scheduler_address, chunk_rows=16))

    logs = tmp_path / "slurm-logs"
    cluster = tmp_path / "slurm.yaml"
    cluster.write_text(yaml.safe_dump({"jobqueue": {
        "system": "slurm", "jobs": 2, "cores": 1, "processes": 1, "memory": "1GiB", "walltime": "00:10:00",
        "queue": "debug", "interface": "lo", "log_directory": str(logs),
        "local_directory": str(tmp_path / "scratch"), "wait_s": 120}}))
    store = tmp_path / "slurm.zarr"
    job = _job_file(tmp_path / "job.yaml", store, inputs)
    done = subprocess.run([sys.executable, "-m", "gbdist.cli", "run", str(job), "--cluster", str(cluster)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    worker_logs = sorted(logs.glob("dask-worker-*.err"))
    assert len(worker_logs) == 2, "two SLURM worker jobs ran"
    assert all("Starting Worker" in p.read_text() for p in worker_logs)
    assert array_digests(store) == array_digests(reference), "SLURM workers write what local ones do"


def test_sbatch_script_runs_a_whole_job(tmp_path, scheduler_address):
    inputs = toy_inputs(tmp_path, 2, seed=50)
    reference = tmp_path / "local.zarr"
    run_job(make_job(reference, inputs, scheduler_address, chunk_rows=16))

    store = tmp_path / "sbatch.zarr"
    job = _job_file(tmp_path / "job.yaml", store, inputs)
    log = tmp_path / "sbatch.log"
    env = os.environ | {"GBDIST": str(Path(sys.executable).with_name("gbdist"))}
    done = subprocess.run(["sbatch", "--wait", "--cpus-per-task=1", "--mem=2G", f"--output={log}",
                           f"--chdir={REPO}", str(REPO / "deploy/slurm/gbdist-job.sbatch"), str(job)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, f"{done.stderr}\n{log.read_text() if log.exists() else ''}"[-3000:]
    assert "1 workers (SLURM job" in log.read_text()
    assert array_digests(store) == array_digests(reference), "SLURM workers write what local ones do"
