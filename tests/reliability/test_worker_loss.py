"""A worker process killed (SIGKILL) mid-SOAP: the job completes and the store is bit-identical."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from distributed import Client, LocalCluster

from gbdist.stages.client import _SINGLE_THREAD_ENV
from gbdist.workflows.job import run_job

from conftest import BACKENDS, array_digests, make_job, soap_flags, toy_inputs


@pytest.mark.parametrize("backend", BACKENDS)
def test_worker_killed_mid_soap(tmp_path, scheduler_address, backend):
    inputs = toy_inputs(tmp_path, 6, seed=30)
    clean = tmp_path / "clean.zarr"
    run_job(make_job(clean, inputs, scheduler_address, chunk_rows=16, soap={"backend": backend}))
    store = tmp_path / "lossy.zarr"
    os.environ.update(_SINGLE_THREAD_ENV)
    killed = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit="2GiB") as cluster, Client(cluster) as client:
        victim = next(iter(client.run(os.getpid).values()))

        def kill_when_half_done():
            deadline = time.time() + 120
            while time.time() < deadline:
                flags = soap_flags(store)
                if flags is not None and 0 < flags.sum() < len(flags):
                    killed["done_at_kill"], killed["total"] = int(flags.sum()), len(flags)
                    os.kill(victim, signal.SIGKILL)
                    return
                time.sleep(0.01)

        killer = threading.Thread(target=kill_when_half_done)
        killer.start()
        report = run_job(make_job(store, inputs, cluster.scheduler_address, chunk_rows=16, soap={"backend": backend}))
        killer.join()
    assert killed, "the job finished before a worker could be killed"
    assert killed["done_at_kill"] < killed["total"]
    assert not report.failures
    assert array_digests(store) == array_digests(clean)
