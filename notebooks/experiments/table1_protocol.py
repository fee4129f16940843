"""Shared by the experiment scripts: score per-GB representations as feature tables with
``gbdist evaluate --features`` (the Table I protocol: same splits, models and tuning)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import gbdist

PROPERTIES = ["energy", "mobility_trend", "shear_coupling"]


def experiment_parser(doc: str) -> argparse.ArgumentParser:
    """Options every scoring experiment takes: --store, --labels, --splits, --workers."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--store", required=True, help="a finished gbdist store (soap, asr, lae)")
    parser.add_argument("--labels", default="olmsted", help="'olmsted' or a labels CSV")
    parser.add_argument("--splits", type=int, default=10, help="random halves (seed 0), as gbdist evaluate")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers for the fits")
    return parser


def score_and_print(store: str, reps: dict[str, np.ndarray], labels: str, n_splits: int, workers: int,
                    properties: list[str] | None = None) -> dict:
    """Write each representation {name: (n_gb, n_feat)}, rows in the store's GB order, as a
    feature table and score them all with ``gbdist.evaluate_store`` (``n_splits`` random halves,
    seed 0, XGBoost tuned inside each training half); print mean ± std per cell."""
    ids = gbdist.open_store(store)["gb"].values
    with tempfile.TemporaryDirectory() as tmp:
        tables = []
        for name, X in reps.items():
            frame = pd.DataFrame(np.asarray(X, np.float32), columns=[f"{name}_{k}" for k in range(X.shape[1])])
            frame.insert(0, "id", ids)
            frame.to_csv(Path(tmp) / f"{name}.csv", index=False)
            tables.append(str(Path(tmp) / f"{name}.csv"))
        options = gbdist.EvaluateOptions(properties=properties or PROPERTIES, splits=n_splits, representations=[],
                                         features=tables)
        result = gbdist.evaluate_store(store, labels, Path(tmp) / "table1", options, gbdist.ClusterConfig(workers=workers))
    for prop, cells in result.table.items():
        for rep, cell in cells.items():
            print(f"{prop:15s} {rep:14s} {cell['mean']:5.1f} ± {cell['std']:.1f}")
    return result.table
