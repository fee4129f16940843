"""Remote stores: every stage on an s3:// URL, against a real S3 API server on loopback
(moto in server mode) through s3fs. The CLI reads the endpoint and keys from the
environment (fsspec's FSSPEC_S3_* variables and the AWS ones), as a user would set them."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from gbdist.workflows.job import run_job

from conftest import array_digests, make_job, toy_inputs

moto_server = pytest.importorskip("moto.server", reason="moto[server] is a test dependency")
s3fs = pytest.importorskip("s3fs", reason="s3fs is a test dependency (pip install -e '.[test]')")

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on loopback with a bucket ``gbdist``; yields (endpoint URL, storage_options)."""
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    options = {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}}
    s3fs.S3FileSystem(**options).mkdir("gbdist")
    yield endpoint, options
    server.stop()


def _gbdist(*args, endpoint: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = os.environ | CREDENTIALS | {"FSSPEC_S3_ENDPOINT_URL": endpoint}
    done = subprocess.run([sys.executable, "-m", "gbdist.cli", *map(str, args), "--no-verbose"],
                          capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_every_stage_on_an_s3_store(tmp_path, s3_endpoint, scheduler_address, learning_store):
    endpoint, options = s3_endpoint
    inputs = toy_inputs(tmp_path, 3, seed=60)
    local = tmp_path / "local.zarr"
    run_job(make_job(local, inputs, scheduler_address, chunk_rows=64))

    url = "s3://gbdist/toy.zarr"
    _gbdist("soap", *inputs, "--store", url, "--workers", "1", "--chunk-rows", "64", endpoint=endpoint)
    _gbdist("lae", "--store", url, "--workers", "1", endpoint=endpoint)
    assert array_digests(url, options) == array_digests(local), "the S3 store holds what the local one does"

    # Job files carry storage_options instead of the environment; a rerun computes nothing.
    report = run_job(make_job(url, inputs, scheduler_address, chunk_rows=64, storage_options=options))
    assert report.soap is None or report.soap.chunks_computed == 0

    # Learning and explain on a remote copy of the learning store.
    store, labels = learning_store
    fs = s3fs.S3FileSystem(**options)
    fs.put(str(store), "gbdist/learn.zarr", recursive=True)
    models = tmp_path / "models"
    _gbdist("learn", "--store", "s3://gbdist/learn.zarr", "--labels", labels, "--property", "energy",
            "--out", models, "--workers", "1", endpoint=endpoint)
    assert sorted(p.name for p in models.glob("*.ubj")) == ["energy_ASR.ubj", "energy_ASR_area.ubj",
                                                            "energy_LER.ubj"]
    explained = tmp_path / "explain"
    _gbdist("explain", "--store", "s3://gbdist/learn.zarr", "--labels", labels, "--property", "disordered",
            "--class", "1", "--top", "2", "--out", explained, endpoint=endpoint)
    report = json.loads((explained / "explain.json").read_text())
    assert len(report["top"]) == 2 and all((explained / e["png"]).exists() for e in report["top"])

    # The stores hold their structures: with the toy inputs deleted, the S3 store opens, gives a
    # boundary's atoms and maps one boundary with a chemiscope file cut from its atoms; with the
    # learning store's recorded sources pointing nowhere, predict --annotate still writes each boundary
    from gbdist.store.dataset import open_store
    from gbdist.store.schema import GB_ID, GB_SOURCE, open_group, write_array
    from gbdist.store.structures import structure_atoms

    for path in inputs:
        path.unlink()
    ds = open_store(url, storage_options=options)
    first = str(ds.gb.values[0])
    assert len(structure_atoms(url, first, storage_options=options)) == int(ds.n_atoms.values[0])
    _gbdist("map", "--store", url, "--out", tmp_path / "map", "--gb", first, "--chemiscope", tmp_path / "m.json.gz",
            "--workers", "1", endpoint=endpoint)
    assert (tmp_path / "m.json.gz").stat().st_size > 0 and any(first in p.name for p in (tmp_path / "map").glob("*.png"))
    learn = open_group("s3://gbdist/learn.zarr", mode="r+", storage_options=options)
    write_array(learn, GB_SOURCE, np.array([f"/gone/{i}.dump" for i in learn[GB_ID][:]]), ["gb"])
    _gbdist("predict", models, "--store", "s3://gbdist/learn.zarr", "--annotate", "--out", tmp_path / "predicted",
            "--workers", "1", endpoint=endpoint)
    assert len(list((tmp_path / "predicted" / "annotated").glob("*.extxyz"))) == len(learn[GB_ID][:])
