"""The Averaged SOAP Representation (ASR): per-GB means of unit SOAP rows, from per-block sums."""

from __future__ import annotations

import numpy as np


def gb_row_sums(rows: np.ndarray, row_start: int, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums of ``rows`` (a block starting at row ``row_start``) per GB.

    Returns (gb positions (k,), float64 sums (k, n_feat)) for the k GBs the block touches.
    """
    stop = row_start + len(rows)
    first = int(np.searchsorted(offsets, row_start, side="right")) - 1
    last = int(np.searchsorted(offsets, stop, side="left"))
    gbs = np.arange(first, last)
    cuts = np.append(np.clip(offsets[gbs], row_start, stop) - row_start, len(rows))
    keep = np.diff(cuts) > 0
    # a sum per slice: several times faster than np.add.reduceat along axis 0 (docs: Performance)
    sums = [rows[a:b].sum(axis=0, dtype=np.float64) for a, b in zip(cuts[:-1][keep], cuts[1:][keep])]
    return gbs[keep], np.array(sums).reshape(len(sums), rows.shape[1])


def asr_matrix(partials: list[tuple[np.ndarray, np.ndarray]], offsets: np.ndarray, n_feat: int) -> np.ndarray:
    """ASR (n_gb, n_feat) float32: mean unit SOAP row per GB from per-block sums (in block order)."""
    total = np.zeros((len(offsets) - 1, n_feat))
    for gbs, sums in partials:
        total[gbs] += sums
    counts = np.diff(offsets).astype(np.float64)
    return (total / counts[:, None]).astype(np.float32)
