"""Unique local atomic environments (LAEs): greedy leader clustering of unit SOAP vectors.

For unit vectors the SOAP dissimilarity is d(a, b) = √(2 − 2 a·b), so "within eps" means
a·b ≥ 1 − eps²/2: every comparison is an inner product, done with FAISS (exact search).
A row becomes a leader (a unique LAE) when no earlier leader lies within eps of it; the
perfect crystal of each bulk lattice (``crystal_soap``) is a first leader. Every row is then assigned to its most
similar leader.
"""

from __future__ import annotations

import faiss
import numpy as np

from gbdist.errors import GbdistError


def similarity_threshold(eps: float) -> float:
    """Inner product at SOAP distance ``eps`` between unit vectors: 1 − eps²/2."""
    return 1.0 - 0.5 * eps * eps


HOT = 32
"""Leaders compared with every row first (the most populated ones): one small GEMM."""

DISTANCE_MARGIN = 1e-3
"""SOAP-distance slack (covers float32 rounding of the similarities) in the shortcut test."""


def soap_distance(similarity: np.ndarray) -> np.ndarray:
    """SOAP distance √(2 − 2 a·b) between unit vectors from their inner product."""
    return np.sqrt(np.maximum(2.0 - 2.0 * np.asarray(similarity, dtype=np.float64), 0.0))


def ip_index(vectors: np.ndarray) -> faiss.IndexFlatIP:
    index = faiss.IndexFlatIP(vectors.shape[1])
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def most_counted(counts: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest counts, ties to the lower index; (min(k, n),) int64."""
    return np.argsort(-counts, kind="stable")[:k]


def _screen(block: np.ndarray, leaders: np.ndarray, index, hot_ids: np.ndarray, thr: float,
            counts: np.ndarray) -> np.ndarray:
    """Rows of ``block`` within the threshold of no leader (indices, ascending); adds one to
    ``counts`` of the leader that covers each other row. The ``hot_ids`` leaders go first
    (one GEMM), then FAISS (``index`` holds all ``leaders``) screens what is left."""
    open_rows = np.arange(len(block))
    if not index.ntotal:
        return open_rows
    sims = block @ leaders[hot_ids].T
    best = sims.argmax(axis=1)
    covered = sims[np.arange(len(block)), best] >= thr
    np.add.at(counts, hot_ids[best[covered]], 1)
    open_rows = open_rows[~covered]
    if len(open_rows):
        sim, idx = index.search(block[open_rows], 1)
        found = sim[:, 0] >= thr
        np.add.at(counts, idx[found, 0], 1)
        open_rows = open_rows[~found]
    return open_rows


def uncovered_rows(rows: np.ndarray, eps: float, leaders: np.ndarray,
                   hot: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows farther than eps from every leader.

    rows : (n, d) and leaders : (n_l, d) float32 unit vectors; hot : leaders compared first
    (default the first ``HOT``), which only sets the speed.

    Returns (open row indices (m,) int64 ascending, rows covered by each leader (n_l,) int64).
    """
    leaders = np.ascontiguousarray(leaders, dtype=np.float32)
    hot = np.arange(min(HOT, len(leaders))) if hot is None or not len(hot) else np.asarray(hot, np.int64)
    counts = np.zeros(len(leaders), np.int64)
    open_rows = _screen(np.ascontiguousarray(rows, dtype=np.float32), leaders, ip_index(leaders), hot,
                        similarity_threshold(eps), counts)
    return open_rows.astype(np.int64), counts


def greedy_leaders(rows: np.ndarray, eps: float, seed: np.ndarray, batch: int = 2048,
                   hot: int = HOT) -> np.ndarray:
    """Rows that become leaders, in order, when ``rows`` are scanned after the ``seed`` leaders.

    Parameters
    ----------
    rows : (n, d) float32 unit vectors.
    eps : SOAP distance below which a row is covered by a leader.
    seed : (k, d) leaders already in place (the perfect crystal of each bulk lattice).
    batch : rows per block. Each block is screened against the ``hot`` leaders that covered
        the most rows so far (one GEMM), then FAISS screens what is left against all leaders;
        the rows still open are scanned in order through their Gram matrix.

    Returns
    -------
    (m,) int64 indices into ``rows`` of the new leaders, ascending.
    """
    thr = similarity_threshold(eps)
    index = ip_index(seed)
    vectors = [np.ascontiguousarray(seed, dtype=np.float32)]
    counts = np.zeros(len(seed), np.int64)
    new: list[int] = []
    for start in range(0, len(rows), batch):
        block = np.ascontiguousarray(rows[start:start + batch], dtype=np.float32)
        leaders = np.vstack(vectors) if len(vectors) > 1 else vectors[0]
        vectors = [leaders]
        open_rows = _screen(block, leaders, index, most_counted(counts, hot), thr, counts)
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
        vectors.append(candidates[chosen])
        counts = np.concatenate([counts, np.ones(len(chosen), np.int64)])
    return np.asarray(new, dtype=np.int64)


def leader_gram(leaders: np.ndarray) -> np.ndarray:
    """Inner products (n_u, n_u) float64 of the leaders (n_u, d): what ``LeaderSearch`` prunes with."""
    vectors = np.asarray(leaders, dtype=np.float64)
    return vectors @ vectors.T


class LeaderSearch:
    """Most similar leader of each row: exact, pruned by the triangle inequality.

    Every row is first compared with the ``hot`` leaders (one GEMM). Let L be its most
    similar hot leader, at SOAP distance δ. Any leader M more similar than L lies within δ of
    the row, so d(L, M) ≤ d(L, row) + d(row, M) < 2δ. Hence when 2δ < m_L, the distance from L
    to the nearest leader outside the hot set, the row is done; otherwise only the leaders
    within 2δ of L (for the largest δ among the rows whose best hot leader is L) are
    compared, in one GEMM per hot leader. The result is the same as comparing every row with
    every leader, and its cost no longer grows with the number of leaders far from the row.

    leaders : (n_u, d) float32 unit vectors; hot : indices of the leaders compared first;
    gram : their ``leader_gram`` when already computed (a driver computes it once for all tasks).
    """

    def __init__(self, leaders: np.ndarray, hot: np.ndarray, gram: np.ndarray | None = None):
        self.leaders = np.ascontiguousarray(leaders, dtype=np.float32)
        self.hot = np.asarray(hot, dtype=np.int64) if len(hot) else np.arange(min(1, len(leaders)))
        self.distance = soap_distance(leader_gram(self.leaders) if gram is None else gram)
        cold = np.setdiff1d(np.arange(len(self.leaders)), self.hot)
        gaps = self.distance[np.ix_(self.hot, cold)]
        self.reach = (gaps.min(axis=1) if len(cold) else np.full(len(self.hot), np.inf)) - DISTANCE_MARGIN

    def hot_pass(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best hot leader of each row: (labels, similarities, done (n,) bool: provably the best)."""
        sims = rows @ self.leaders[self.hot].T
        best = sims.argmax(axis=1)
        similarity = sims[np.arange(len(rows)), best].astype(np.float32)
        return self.hot[best].astype(np.int32), similarity, 2.0 * soap_distance(similarity) < self.reach[best]

    def search(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labels (n,) int32, similarities (n,) float32) of ``rows`` (n, d)."""
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        labels, similarity, done = self.hot_pass(rows)
        rest = np.flatnonzero(~done)
        for hot_leader in np.unique(labels[rest]):
            group = rest[labels[rest] == hot_leader]
            reach = 2.0 * soap_distance(similarity[group]) + DISTANCE_MARGIN
            order = np.argsort(reach, kind="stable")
            group, reach = group[order], reach[order]
            for lo, hi in reach_bins(np.searchsorted(np.sort(self.distance[hot_leader]), reach)):
                # ascending leader index: ties go to the lower index, as in a search of every leader
                candidates = np.flatnonzero(self.distance[hot_leader] < reach[hi - 1])
                rows_in = group[lo:hi]
                sims = rows[rows_in] @ self.leaders[candidates].T
                best = sims.argmax(axis=1)
                labels[rows_in] = candidates[best]
                similarity[rows_in] = sims[np.arange(len(rows_in)), best]
        return labels, similarity


def reach_bins(counts: np.ndarray, floor: int = 8) -> list[tuple[int, int]]:
    """Cut rows sorted by reach into bins [lo, hi) compared with one candidate set each: the
    candidates of a bin's farthest row (``counts``, ascending, is each row's own number) are at
    most twice those of its nearest row (or ``floor``), so no row is compared with more than
    about twice the leaders it needs, in a few GEMMs."""
    bins, lo = [], 0
    while lo < len(counts):
        hi = max(int(np.searchsorted(counts, 2 * max(int(counts[lo]), floor), side="right")), lo + 1)
        bins.append((lo, hi))
        lo = hi
    return bins


def assign_to_leaders(rows: np.ndarray, leaders: np.ndarray, hot: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Most similar leader of each row: (labels (n,) int32, similarities (n,) float32).

    ``hot`` (default: the first ``HOT`` leaders) only sets how fast; see ``LeaderSearch``.
    """
    return LeaderSearch(leaders, np.arange(min(HOT, len(leaders))) if hot is None else hot).search(rows)


def gb_label_counts(gbs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a block per (GB, unique LAE) pair, from each row's GB position and label (n,).

    Returns (pairs (2, m) int64: GB positions and labels, ascending by GB then label;
    counts (m,) int64). One sort of n integer keys (a 2-D ``np.unique`` sorts rows of pairs).
    """
    gbs, labels = np.asarray(gbs, np.int64), np.asarray(labels, np.int64)
    if not len(gbs):
        return np.zeros((2, 0), np.int64), np.zeros(0, np.int64)
    first, width = gbs.min(), int(labels.max()) + 1
    keys, counts = np.unique((gbs - first) * width + labels, return_counts=True)
    return np.stack([keys // width + first, keys % width]), counts


def ler_matrix(counts: np.ndarray) -> np.ndarray:
    """LER (n_gb, n_u) float32 from per-GB counts of each unique LAE: each row sums to 1."""
    counts = np.asarray(counts, dtype=np.float64)
    return (counts / counts.sum(axis=1, keepdims=True)).astype(np.float32)


def perfect_fcc_soap(soap_params, species: list[str], element: str | None = None) -> np.ndarray:
    """Unit SOAP vector of an atom in perfect fcc at ASE's reference lattice constant of ``element``
    (default: the first species), shape (n_feat,) float32: the seed of stores written before
    structure types (fcc bicrystals), which record no lattice constant.

    Raises
    ------
    GbdistError
        If ``element`` is not fcc in ASE's reference states (the seed of other lattices is
        not built yet).
    """
    from ase.data import atomic_numbers, reference_states

    element = element or species[0]
    ref = reference_states[atomic_numbers[element]]
    if not ref or ref.get("symmetry") != "fcc":
        lattice = ref.get("symmetry", "unknown") if ref else "unknown"
        raise GbdistError(f"the unique-LAE seed is perfect fcc, and {element} is {lattice} in ASE's reference "
                          "states, and this store records no lattice: recompute it with `gbdist soap`")
    return crystal_soap(soap_params, species, "fcc", element, ref["a"])


def crystal_soap(soap_params, species: list[str], lattice: str, element: str, a: float) -> np.ndarray:
    """Unit SOAP vector of an atom in the perfect ``lattice`` crystal of ``element`` at lattice constant
    ``a`` (Å; a structure's own, measured), shape (n_feat,) float32: the seed of that lattice."""
    from gbdist.compute.crystal import perfect_crystal
    from gbdist.compute.soap import atoms_soap

    row = atoms_soap(perfect_crystal(element, lattice, a), np.array([0]), soap_params, species)
    row = row.astype(np.float64).reshape(-1)
    return (row / np.linalg.norm(row)).astype(np.float32)


def knee(eps: np.ndarray, counts: np.ndarray) -> int:
    """Index of the knee of a decreasing count-vs-eps curve (largest gap below the chord
    of the normalised log-count curve)."""
    x = (eps - eps[0]) / (eps[-1] - eps[0])
    y = np.log(np.asarray(counts, dtype=float))
    y = (y - y.min()) / max(y.max() - y.min(), 1e-12)
    chord = y[0] + (y[-1] - y[0]) * x
    return int(np.argmax(chord - y))
