"""Unique local atomic environments (LAEs): greedy leader clustering of unit SOAP vectors.

For unit vectors the SOAP dissimilarity is d(a, b) = √(2 − 2 a·b), so "within eps" means
a·b ≥ 1 − eps²/2: every comparison is an inner product, done with FAISS (exact search).
A row becomes a leader (a unique LAE) when no earlier leader lies within eps of it; the
perfect-fcc environment is the first leader. Every row is then assigned to its most
similar leader.
"""

from __future__ import annotations

import faiss
import numpy as np


def similarity_threshold(eps: float) -> float:
    """Inner product at SOAP distance ``eps`` between unit vectors: 1 − eps²/2."""
    return 1.0 - 0.5 * eps * eps


def _index(vectors: np.ndarray) -> faiss.IndexFlatIP:
    index = faiss.IndexFlatIP(vectors.shape[1])
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def greedy_leaders(rows: np.ndarray, eps: float, seed: np.ndarray, batch: int = 2048) -> np.ndarray:
    """Rows that become leaders, in order, when ``rows`` are scanned after the ``seed`` leaders.

    Parameters
    ----------
    rows : (n, d) float32 unit vectors.
    eps : SOAP distance below which a row is covered by a leader.
    seed : (k, d) leaders already in place (e.g. perfect fcc).
    batch : rows per block: FAISS screens a block against the leaders so far, then the
        rows it leaves open are scanned in order through their Gram matrix.

    Returns
    -------
    (m,) int64 indices into ``rows`` of the new leaders, ascending.
    """
    thr = similarity_threshold(eps)
    index = _index(seed)
    new: list[int] = []
    for start in range(0, len(rows), batch):
        block = np.ascontiguousarray(rows[start:start + batch], dtype=np.float32)
        if index.ntotal:
            best, _ = index.search(block, 1)
            open_rows = np.flatnonzero(best[:, 0] < thr)
        else:
            open_rows = np.arange(len(block))
        if not len(open_rows):
            continue
        candidates = block[open_rows]
        gram = candidates @ candidates.T
        alive = np.ones(len(open_rows), bool)
        chosen = []
        for i in range(len(open_rows)):  # greedy within the block, in row order
            if alive[i]:
                chosen.append(i)
                alive &= gram[i] < thr
        new.extend(start + int(open_rows[i]) for i in chosen)
        index.add(candidates[chosen])
    return np.asarray(new, dtype=np.int64)


def assign_to_leaders(rows: np.ndarray, leaders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Most similar leader of each row: (labels (n,) int32, similarities (n,) float32)."""
    sims, labels = _index(leaders).search(np.ascontiguousarray(rows, dtype=np.float32), 1)
    return labels[:, 0].astype(np.int32), sims[:, 0].astype(np.float32)


def ler_matrix(counts: np.ndarray) -> np.ndarray:
    """LER (n_gb, n_u) float32 from per-GB counts of each unique LAE: each row sums to 1."""
    counts = np.asarray(counts, dtype=np.float64)
    return (counts / counts.sum(axis=1, keepdims=True)).astype(np.float32)


def perfect_fcc_soap(soap_params, species: list[str], element: str | None = None) -> np.ndarray:
    """Unit SOAP vector of an atom in perfect fcc (the first leader), shape (n_feat,) float32.

    Uses ASE's reference lattice constant of ``element`` (default: the first species).
    """
    from ase.build import bulk
    from ase.data import atomic_numbers, reference_states

    from gbdist.soap import make_soap

    element = element or species[0]
    ref = reference_states[atomic_numbers[element]]
    if not ref or ref.get("symmetry") != "fcc":
        raise ValueError(f"{element} is not fcc in ASE's reference states; give an fcc element for the seed")
    atoms = bulk(element, "fcc", a=ref["a"], cubic=True)
    row = make_soap(soap_params, species, periodic=True).create(atoms, centers=[0])
    row = np.asarray(row, dtype=np.float64).reshape(-1)
    return (row / np.linalg.norm(row)).astype(np.float32)


def knee(eps: np.ndarray, counts: np.ndarray) -> int:
    """Index of the knee of a decreasing count-vs-eps curve (largest gap below the chord
    of the normalised log-count curve)."""
    x = (eps - eps[0]) / (eps[-1] - eps[0])
    y = np.log(np.asarray(counts, dtype=float))
    y = (y - y.min()) / max(y.max() - y.min(), 1e-12)
    chord = y[0] + (y[-1] - y[0]) * x
    return int(np.argmax(chord - y))
