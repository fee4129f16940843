"""A task that kills its worker never hangs a job: it is named with the reason, the rest is kept,
and a rerun with more memory computes only what is missing. A cluster whose workers are all
paused at their memory limit ends the job after the stall timeout instead of waiting forever."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

from gbdist.io.lammps import write_lammps_dump
from gbdist.stages.client import ClusterConfig, dask_client
from gbdist.stages.watchdog import TaskFailed

from conftest import soap_flags, toy_boundary


def _soap(store, inputs, *options) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "gbdist.cli", "soap", *map(str, inputs), "--store", str(store), "--workers", "1",
               "--no-verbose", *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_a_task_that_exceeds_its_worker_memory_is_named_and_a_rerun_with_more_completes(tmp_path):
    # small.dump: a toy boundary; big.dump: every one of its 18,816 atoms a centre (pad 60 Å) in one
    # task, so one unbatched dscribe call holds about 35 kB × 18,816 ≈ 660 MB, over a 700 MiB
    # worker's limit with the worker's own memory
    small, big = tmp_path / "small.dump", tmp_path / "big.dump"
    write_lammps_dump(small, toy_boundary(seed=1, cells=(6, 3, 3), source=small.name))
    write_lammps_dump(big, toy_boundary(seed=2, cells=(24, 14, 14), source=big.name))
    store = tmp_path / "s.zarr"
    t0 = time.perf_counter()
    first = _soap(store, [small, big], "--pad", "60", "--chunk-rows", "32768", "--memory-limit", "700MiB",
                  "--task-memory", "16GiB")
    took = time.perf_counter() - t0
    text = " ".join(first.stderr.split())
    assert first.returncode == 1, first.stderr[-3000:]
    assert took < 300
    assert "big.dump" in text and "worker killed: memory" in text, text[-3000:]
    group = zarr.open_group(str(store), mode="r")
    failures = group.attrs["failures"]
    assert [f["structures"] for f in failures] == [["big.dump", "small.dump"]] or \
        any("big.dump" in f["structures"] for f in failures), failures
    assert "worker killed: memory" in failures[0]["error"]
    flags = soap_flags(store)
    assert not flags.all()
    second = _soap(store, [small, big], "--pad", "60", "--chunk-rows", "32768", "--memory-limit", "2GiB")
    assert second.returncode == 0, second.stderr[-3000:]
    assert soap_flags(store).all()
    group = zarr.open_group(str(store), mode="r")
    assert group.attrs["failures"] == []
    assert np.isfinite(group["soap"][:]).all() and (group["lae/soap_norm"][:] > 0).all()


LEAK = []


def _keep(n_bytes: int) -> int:
    LEAK.append(np.ones(n_bytes // 8))  # memory Dask does not manage: the worker pauses and stays paused
    return n_bytes


def _one() -> int:
    return 1


def _wait_until_paused(client, timeout_s: float = 20.0) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if all(w["status"] == "paused" for w in client.scheduler_info()["workers"].values()):
            return
        time.sleep(0.1)
    raise AssertionError("the worker did not pause at its memory limit")


def test_a_cluster_whose_workers_all_pause_ends_the_wait_with_the_reason():
    config = ClusterConfig(workers=1, memory_limit="1GiB", stall_timeout_s=6)
    t0 = time.perf_counter()
    with pytest.raises(TaskFailed, match="every worker is paused at its memory limit"):
        with dask_client(config) as client:
            client.submit(_keep, 720 << 20, pure=False).result()
            _wait_until_paused(client)  # the worker's memory monitor looks every 100 ms: not at once
            client.submit(_one, pure=False).result()  # never runs: the only worker is paused
    assert time.perf_counter() - t0 < 90
