"""Shared by the experiment scripts: score per-GB representations with gbdist's Table I protocol."""

from __future__ import annotations

import argparse

import numpy as np

PROPERTIES = ["energy", "mobility_trend", "shear_coupling"]


def experiment_parser(doc: str) -> argparse.ArgumentParser:
    """Options every scoring experiment takes: --store, --labels, --splits, --workers."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--store", required=True, help="a finished gbdist store (soap, asr, lae)")
    parser.add_argument("--labels", default="olmsted", help="'olmsted' or a labels CSV")
    parser.add_argument("--splits", type=int, default=10, help="random halves (seed 0), as gbdist evaluate")
    parser.add_argument("--workers", type=int, default=2, help="Dask workers for the fits")
    return parser


def score_and_print(reps: dict[str, np.ndarray], labels: str, gb_ids, n_splits: int, workers: int,
                    properties: list[str] | None = None) -> dict:
    """Run ``gbdist evaluate``'s protocol (``n_splits`` random halves, seed 0, XGBoost tuned
    inside each training half) on reps {name: (n_gb, n_feat)} and print mean ± std per cell.
    """
    from dask.distributed import Client, LocalCluster

    from gbdist.learning.labels import align_labels, load_labels
    from gbdist.learning.protocol import run_table1

    props = align_labels(load_labels(labels), np.asarray(gb_ids), properties or PROPERTIES)
    with Client(LocalCluster(n_workers=workers, threads_per_worker=1)) as client:
        results = run_table1(client, reps, props, n_splits, 0)
    for prop, cells in results.items():
        for rep, cell in cells.items():
            summary = cell.summary()
            print(f"{prop:15s} {rep:14s} {summary['mean']:5.1f} ± {summary['std']:.1f}")
    return results
