"""Concurrency: no two tasks own one chunk, and two runs on one store cannot both write it."""

from __future__ import annotations

import subprocess
import time

import numpy as np

from gbdist.store.lock import lock_path
from gbdist.store.schema import RowPlan
from gbdist.workflows.job import run_job

from conftest import array_digests, make_job, soap_command, toy_inputs


def test_chunk_plan_gives_every_row_to_exactly_one_task():
    rng = np.random.default_rng(0)
    for _ in range(50):
        counts = rng.integers(1, 400, rng.integers(1, 40))
        offsets = np.concatenate([[0], np.cumsum(counts)])
        chunk_rows = int(rng.integers(8, 300))
        plan = RowPlan(offsets, chunk_rows)
        ranges = [plan.chunk(k) for k in range(plan.n_chunks)]
        owner = np.zeros(offsets[-1], int)
        for start, stop in ranges:
            assert start % chunk_rows == 0 and stop - start <= chunk_rows  # inside one Zarr chunk
            owner[start:stop] += 1
        assert np.all(owner == 1)


def test_a_second_run_on_a_busy_store_is_refused_and_the_first_finishes(tmp_path, scheduler_address):
    inputs = toy_inputs(tmp_path, 5, seed=20)
    clean = tmp_path / "clean.zarr"
    run_job(make_job(clean, inputs, scheduler_address, chunk_rows=16, stages=["soap", "asr"]))
    store = tmp_path / "busy.zarr"
    first = subprocess.Popen(soap_command(store, inputs), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while not lock_path(str(store)).exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert lock_path(str(store)).exists(), "the first run never took the lock"
    second = subprocess.run(soap_command(store, inputs), capture_output=True, text=True, timeout=120)
    out, _ = first.communicate(timeout=300)
    assert second.returncode == 2
    assert "busy.zarr: in use by another gbdist run (pid" in " ".join((second.stdout + second.stderr).split())
    assert first.returncode == 0, out
    assert not lock_path(str(store)).exists()
    assert array_digests(store) == array_digests(clean)
