"""The experiment scripts in notebooks/experiments run on a small store and print every cell."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_classifiers_script_scores_every_cell(learning_store):
    store, labels = learning_store
    run = subprocess.run([sys.executable, str(ROOT / "notebooks/experiments/classifiers.py"), "--store", str(store),
                          "--labels", str(labels), "--property", "disordered", "--splits", "2"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = [line.split() for line in run.stdout.splitlines()]
    assert len(lines) == 2 * 5, run.stdout  # (ASR, LER) × five classifiers
    for line in lines:
        mean, std = float(line[3]), float(line[5])
        assert 0 <= mean <= 100 and std >= 0


def test_featomic_asr_of_one_boundary(learning_store):
    pytest.importorskip("featomic", reason="featomic is an optional experiment dependency (pip install featomic)")
    sys.path.insert(0, str(ROOT / "notebooks/experiments"))
    from featomic_asr import featomic_asr_of_gb

    from gbdist.store import open_store

    group = open_store(str(learning_store[0]), mode="r")
    offset = group["gb/offset"][:2]
    asr = featomic_asr_of_gb(str(group["gb/source"][0]), group["lae/atom"][offset[0]:offset[1]],
                             int(group["gb/normal"][0]), 4, 4)
    assert asr.shape == (4 * 4 * 5,)  # n_max² (l_max + 1) for one species
    assert 0.5 < np.linalg.norm(asr) <= 1.0 + 1e-6  # a mean of similar unit vectors
