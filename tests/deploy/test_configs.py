"""Every config in deploy/ is valid: cluster files load, and dask-jobqueue renders their job scripts."""

import subprocess
from pathlib import Path

import pytest

from gbdist.errors import GbdistError
from gbdist.stages.client import ClusterConfig, JobqueueConfig, job_script, load_cluster

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CLUSTER_FILES = sorted(p for p in DEPLOY.rglob("*.yaml"))
SCRIPTS = sorted([*DEPLOY.rglob("*.sh"), *DEPLOY.rglob("*.sbatch"), *DEPLOY.rglob("*.pbs")])


def test_deploy_has_slurm_pbs_and_local_configs():
    names = {p.relative_to(DEPLOY).as_posix() for p in CLUSTER_FILES}
    assert {"slurm/cluster.yaml", "pbs/cluster.yaml", "local/cluster.yaml"} <= names


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_cluster_file_loads_and_renders(path):
    config = load_cluster(path)
    if config.jobqueue is None:
        assert config.scheduler and config.scheduler.startswith("tcp://")
        return
    jq = config.jobqueue
    script = job_script(jq, scheduler="tcp://10.0.0.1:8786")
    directive = {"slurm": "#SBATCH", "pbs": "#PBS"}[jq.system]
    assert script.count(directive) >= 3
    assert "distributed.cli.dask_worker tcp://10.0.0.1:8786" in script
    assert f"--nworkers {jq.processes}" in script or jq.processes == 1
    assert "export OMP_NUM_THREADS=1" in script, "one numeric thread per worker thread"
    if jq.queue:
        assert (f"-p {jq.queue}" if jq.system == "slurm" else f"-q {jq.queue}") in script
    if jq.system == "pbs":
        assert f"-l {jq.resource_spec}" in script


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_shell_scripts_parse(path):
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


def test_bad_cluster_file_is_named(tmp_path):
    bad = tmp_path / "cluster.yaml"
    bad.write_text("jobqueue:\n  system: lsf\n  corez: 4\n")
    with pytest.raises(GbdistError, match=r"cluster.yaml: invalid cluster file: .*system.*corez"):
        load_cluster(bad)


def test_cluster_section_rules():
    with pytest.raises(ValueError, match="resource_spec is a PBS setting"):
        JobqueueConfig(system="slurm", resource_spec="select=1")
    with pytest.raises(ValueError, match="either scheduler or jobqueue"):
        ClusterConfig(scheduler="tcp://x:1", jobqueue={"system": "slurm"})
    assert JobqueueConfig(system="pbs", jobs=3, processes=2, cores=4).n_workers == 6
