"""Experiment: what the ASR's mean of unit SOAP vectors leaves out, beside it.

    .venv/bin/python notebooks/experiments/soap_moments.py --store out/olmsted.zarr --splits 10

The ASR averages unit-normalised SOAP rows, so it loses each row's norm (the local density
the power spectrum saw) and the spread of the rows about the mean. From a finished store this
builds, per GB:

- "density" (5 numbers): mean and standard deviation of the per-atom SOAP norm
  (``lae/soap_norm``) and the fractions of the GB's centres in each class of gbdist's CNA
  (fcc, hcp, other; ``lae/cna``);
- "std" (n_feat numbers): the per-component standard deviation of the unit SOAP rows.

It scores "ASR", "density", "ASR+density" and "ASR+std" with gbdist's Table I protocol on
``--splits`` of the splits ``gbdist evaluate`` uses (seed 0), and prints mean ± std per cell.
"""

from __future__ import annotations

import numpy as np

from gbdist.compute.asr import gb_row_sums
from gbdist.compute.crystal import FCC, HCP, OTHER

CNA_CLASSES = (FCC, HCP, OTHER)  # asap3's restricted CNA, as stored in lae/cna


def density_features(soap_norm: np.ndarray, cna: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(n_gb, 5): mean and std of the SOAP norm, then the fcc, hcp and other fractions, per GB.

    soap_norm (n_rows,) and cna (n_rows,) are in store row order; offsets (n_gb + 1,).
    """
    counts = np.diff(offsets)
    gb = np.repeat(np.arange(len(counts)), counts)
    norm = soap_norm.astype(np.float64)
    mean = np.bincount(gb, norm, minlength=len(counts)) / counts
    std = np.sqrt(np.maximum(np.bincount(gb, norm ** 2, minlength=len(counts)) / counts - mean ** 2, 0))
    fractions = [np.bincount(gb, cna == k, minlength=len(counts)) / counts for k in CNA_CLASSES]
    return np.column_stack([mean, std, *fractions]).astype(np.float32)


def soap_std(soap, offsets: np.ndarray, asr: np.ndarray, rows_per_read: int | None = None) -> np.ndarray:
    """(n_gb, n_feat): per-component std of each GB's SOAP rows, read a block of rows at a time.

    soap: the store's (n_rows, n_feat) array; asr: the per-GB means of the same rows;
    rows_per_read defaults to the array's row chunk.
    """
    squares = np.zeros(asr.shape)
    step = rows_per_read or soap.chunks[0]
    for start in range(0, soap.shape[0], step):
        block = soap[start:start + step].astype(np.float64)
        gbs, sums = gb_row_sums(block ** 2, start, offsets)
        squares[gbs] += sums
    variance = squares / np.diff(offsets)[:, None] - asr.astype(np.float64) ** 2
    return np.sqrt(np.maximum(variance, 0)).astype(np.float32)


def main() -> None:
    from table1_protocol import experiment_parser, score_and_print

    from gbdist.store.representations import read_representations
    from gbdist.store.schema import open_group

    parser = experiment_parser(__doc__)
    parser.add_argument("--property", action="append", help="label columns (default: the three Table I properties)")
    args = parser.parse_args()
    group = open_group(args.store, mode="r")
    offsets = group["gb/offset"][:]
    asr = read_representations(group)["ASR"][0]
    density = density_features(group["lae/soap_norm"][:], group["lae/cna"][:], offsets)
    reps = {"ASR": asr, "density": density, "ASR+density": np.hstack([asr, density]),
            "ASR+std": np.hstack([asr, soap_std(group["soap"], offsets, asr)])}
    score_and_print(args.store, reps, args.labels, args.splits, args.workers, args.property)


if __name__ == "__main__":
    main()
