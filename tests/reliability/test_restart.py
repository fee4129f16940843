"""Restart is free: a job SIGKILLed mid-SOAP resumes, computes only missing chunks, and
ends bit-identical to an uninterrupted run."""

import os
import signal
import subprocess
import time

import numpy as np
import pytest

from gbdist.workflows.job import run_job

from conftest import BACKENDS, array_digests, make_job, soap_command, soap_flags, toy_inputs


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_run_resumes_to_an_identical_store(tmp_path, scheduler_address, backend):
    inputs = toy_inputs(tmp_path, 6, seed=10)
    clean = tmp_path / "clean.zarr"
    run_job(make_job(clean, inputs, scheduler_address, chunk_rows=16, soap={"backend": backend}))

    killed = tmp_path / "killed.zarr"
    proc = subprocess.Popen(soap_command(killed, inputs, backend), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    flags = None
    while time.time() < deadline:
        flags = soap_flags(killed)
        if flags is not None and 3 <= flags.sum() < len(flags) // 2:
            break
        if proc.poll() is not None:
            pytest.fail("the run finished before it could be killed; make the input larger")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    flags = soap_flags(killed)
    missing = int((flags == 0).sum())
    assert 0 < missing < len(flags)

    report = run_job(make_job(killed, inputs, scheduler_address, chunk_rows=16, soap={"backend": backend}))
    assert report.soap.chunks_computed == missing, "only the missing chunks are computed"
    assert array_digests(killed) == array_digests(clean)
    np.testing.assert_array_equal(soap_flags(killed), 1)
