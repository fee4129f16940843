"""Shared fixtures: small bicrystal-like structures built in code, and the real Olmsted data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from gbdist.compute.cna import compute_cna
from gbdist.io.lammps import write_lammps_dump
from gbdist.structure import Structure

ROOT = Path(__file__).resolve().parents[1]

try:
    import featomic  # noqa: F401
    _NO_FEATOMIC = False
except ImportError:
    _NO_FEATOMIC = True
BACKENDS = ["dscribe", pytest.param("featomic", marks=pytest.mark.skipif(
    _NO_FEATOMIC, reason="featomic is an optional extra (pip install -e '.[featomic]')"))]
"""The SOAP backends, for tests that run with each."""
OLMSTED = ROOT.parent / "shared" / "data" / "olmsted"
OLMSTED_READ = {"element": "Ni"}
"""How to read the Olmsted dumps (no element column; every atom is Ni), as a job's ``read``."""
OLMSTED_SELECT = {"type_column": "c_cna", "type_convention": "lammps"}
"""How the paper selects in the Olmsted dumps (their LAMMPS CNA column), as a job's ``select``."""


def olmsted_dump(n: int) -> Path:
    """Path of Olmsted dump N; skips the test where the shared data are absent."""
    path = OLMSTED / "dumps" / f"ni.p{n}.out.xz"
    if not path.exists():
        pytest.skip(f"real Olmsted data not found at {path.parent} (read from ../shared, never copied)")
    return path


def toy_boundary(seed: int = 0, cells=(14, 3, 3), disorder: float = 0.35, with_cna: bool = True,
                 source: str = "toy") -> Structure:
    """A small Ni slab, open along x, with a disordered 'boundary' layer in the middle.

    End slabs (x within 5 Å of either end) have types 4 and 5, the two halves 1 and 2;
    atoms within 3 Å of the middle are displaced at random by up to ``disorder`` Å.
    """
    rng = np.random.default_rng(seed)
    atoms = bulk("Ni", "fcc", a=3.52, cubic=True).repeat(cells)
    pos = atoms.positions.copy()
    x = pos[:, 0]
    mid = x.max() / 2
    core = np.abs(x - mid) < 3.0
    pos[core] += rng.uniform(-disorder, disorder, size=(core.sum(), 3))
    types = np.where(x < mid, 1, 2)
    types[x < 5.0] = 4
    types[x > x.max() - 5.0] = 5
    cell = atoms.cell[:].copy()
    cell[0, 0] += 10.0  # open along x: vacuum beyond the last layer
    s = Structure(source=source, positions=pos, cell=cell, pbc=np.array([False, True, True]),
                  numbers=atoms.numbers, ids=np.arange(1, len(atoms) + 1) * 3 + 7,
                  origin=np.zeros(3), extras={"type": types})
    if with_cna:
        s.extras["c_cna"] = compute_cna(s)
    return s


@pytest.fixture
def toy_dumps(tmp_path):
    """Four toy boundary dumps (.xz, .gz, plain), as a list of paths."""
    paths = []
    for i, suffix in enumerate([".dump.xz", ".dump.gz", ".dump", ".dump.xz"]):
        p = tmp_path / f"toy{i}{suffix}"
        write_lammps_dump(p, toy_boundary(seed=i, source=p.name))
        paths.append(p)
    return paths


@pytest.fixture(scope="session")
def scheduler_address():
    """A 2-worker LocalCluster shared by the tests that run stages in process."""
    import os

    from distributed import LocalCluster

    from gbdist.stages.client import _SINGLE_THREAD_ENV

    os.environ.update(_SINGLE_THREAD_ENV)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit="3GiB") as cluster:
        yield cluster.scheduler_address


def make_job(store, inputs, scheduler_address, **kw):
    """A JobConfig for ``inputs`` into ``store`` on the shared cluster."""
    from gbdist.workflows.job import JobConfig

    return JobConfig(store=str(store), inputs=[str(i) for i in inputs],
                     cluster={"scheduler": scheduler_address}, **kw)


def toy_inputs(folder, n: int, seed: int) -> list:
    """``n`` toy boundary dumps ``gb<i>.dump`` in ``folder`` (seeds seed, seed + 1, …)."""
    paths = []
    for i in range(n):
        path = folder / f"gb{i}.dump"
        write_lammps_dump(path, toy_boundary(seed=seed + i, source=path.name))
        paths.append(path)
    return paths


def soap_command(store, inputs, backend: str = "dscribe") -> list[str]:
    """``gbdist soap`` as a subprocess command: one worker, 16-row chunks (many small tasks)."""
    import sys

    return [sys.executable, "-m", "gbdist.cli", "soap", *map(str, inputs), "--store", str(store),
            "--workers", "1", "--chunk-rows", "16", "--soap-backend", backend, "--no-verbose"]


def soap_flags(store):
    """The store's ``progress/soap`` flags, or None before the stage has created them."""
    import zarr

    try:
        return zarr.open_group(str(store), mode="r")["progress/soap"][:]
    except Exception:  # not created yet
        return None


TIMINGS = {"progress/soap_cpu"}  # measured CPU seconds: bookkeeping, not data


def array_digests(store, storage_options: dict | None = None) -> dict[str, str]:
    """sha256 of every data array in a store (path or URL), by path (timing arrays left out)."""
    import hashlib

    import zarr

    group = zarr.open_group(str(store), mode="r", storage_options=storage_options)
    return {name: hashlib.sha256(np.asarray(arr[...]).tobytes()).hexdigest()
            for name, arr in group.members(max_depth=None)
            if isinstance(arr, zarr.Array) and name not in TIMINGS}


@pytest.fixture(scope="session")
def learning_store(tmp_path_factory, scheduler_address):
    """A store of 24 toy boundaries (disorder 0.3–0.7 Å) with ASR and LER, and a labels CSV."""
    import pandas as pd

    from gbdist.workflows.job import run_job

    root = tmp_path_factory.mktemp("learning")
    disorder = np.linspace(0.3, 0.7, 24)
    paths = []
    for i, d in enumerate(disorder):
        path = root / f"gb{i:02d}.dump"
        write_lammps_dump(path, toy_boundary(seed=i, cells=(10, 2, 2), disorder=d, source=path.name))
        paths.append(path)
    store = root / "s.zarr"
    report = run_job(make_job(store, paths, scheduler_address, stages=["soap", "asr", "lae"]))
    assert not report.failures, report.failures
    labels = root / "labels.csv"
    pd.DataFrame({"id": [p.name.split(".")[0] for p in paths], "energy": 0.4 + 2 * disorder,
                  "disordered": (disorder > 0.5).astype(int)}).to_csv(labels, index=False)
    return store, labels


@pytest.fixture
def store_copy(learning_store, tmp_path):
    """A private copy of the learning store (its LAE run at eps 0.032 is the chosen one) and its labels."""
    import shutil

    store, labels = learning_store
    copy = tmp_path / "s.zarr"
    shutil.copytree(store, copy)
    return str(copy), labels
