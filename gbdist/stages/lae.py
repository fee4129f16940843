"""Unique-LAE stage driver: leader discovery, assignment and LER, reading each ``soap`` row twice.

1. Discovery: the greedy rule over every row in row order, seeded with the perfect crystal of each
   bulk lattice in the store (``crystal_seeds``, at the structures' own lattice constant), exactly
   as one process would scan them. The workers screen chunks ahead of the driver: each task
   reads one chunk and returns only its rows that no leader known when it started covers
   (and how many rows each leader covered). The driver takes the chunks in order, and the
   greedy rule over those few rows, against every leader found so far, gives the new leaders.
2. Assignment, in parallel, one task per chunk: each row's most similar leader
   (``LeaderSearch``: the most populated leaders first, then, for the rows they do not settle,
   only the leaders the triangle inequality leaves in reach). Discovery leaves every row
   within eps of a leader, so the rows are final.
3. Only if float rounding leaves a row a hair beyond eps of every leader ("orphans"): those
   rows pass through the greedy rule as further leaders, and the rows whose stored distance
   δ allows a change (2δ ≥ d(old leader, new leader)) are compared with them.

Every task reports the rows it read; the run records ``soap_passes`` (rows read ÷ rows).

Results for one eps are written where :mod:`gbdist.store.schema` says (its LAE group); the
first run in a store, or one run with ``choose=True``, becomes the store's chosen eps.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import zarr

from gbdist.compute.leaders import (
    DISTANCE_MARGIN,
    HOT,
    LeaderSearch,
    crystal_soap,
    gb_label_counts,
    greedy_leaders,
    ip_index,
    leader_gram,
    ler_matrix,
    most_counted,
    perfect_fcc_soap,
    similarity_threshold,
    soap_distance,
    uncovered_rows,
)
from gbdist.compute.soap import SoapParams, check_store_rows
from gbdist.errors import StoreError
from gbdist.rss import peak_rss_bytes, reset_peak_rss
from gbdist.stages.progress import as_completed_with_progress, with_progress
from gbdist.store.schema import (
    ASSIGNED_GROUP,
    GB_HOST,
    GB_ID,
    GB_LATTICE,
    GB_LATTICE_CONSTANT,
    LAE_ATOM,
    LAE_GB,
    PROGRESS_SOAP,
    UNIQUE_ATOM,
    UNIQUE_COUNT,
    UNIQUE_GB,
    UNIQUE_SOAP,
    UNIQUE_SOURCE,
    StoreArrays,
    begin_lae_run,
    check_eps,
    create_store_array,
    lae_group_name,
    open_group,
    record_lae_run,
    stage_done,
    write_array,
)

log = logging.getLogger(__name__)


@dataclass
class LaeReport:
    eps: float
    n_rows: int
    n_unique: int
    n_orphan_leaders: int
    wall_s: float
    group: str
    peak_rss_gib: float = 0.0
    chosen: bool = False
    soap_passes: float = 0.0
    seeds: list = field(default_factory=list)
    """the ``crystal_seeds`` the run started from."""


def _chunk_rows(group: StoreArrays, k: int) -> tuple[int, np.ndarray]:
    """(first row, rows) of soap chunk k."""
    soap = group["soap"]
    start = k * soap.chunks[0]
    return start, soap[start:start + soap.chunks[0]]


def screen_chunk(k: int, store: str, storage_options, leaders: dict[float, np.ndarray],
                 hot: dict[float, np.ndarray]) -> dict:
    """Worker task: for each eps, the rows of chunk k that none of ``leaders[eps]`` covers.

    Returns {"k", "start", "rows_read", eps: (open row indices in the chunk, their vectors,
    rows covered by each given leader)}.
    """
    start, rows = _chunk_rows(StoreArrays(store, "r", storage_options), k)
    out = {"k": k, "start": start, "rows_read": len(rows)}
    for eps, vectors in leaders.items():
        open_rows, covered = uncovered_rows(rows, eps, vectors, hot[eps])
        out[eps] = (open_rows, rows[open_rows], covered)
    return out


@dataclass
class Leaders:
    """Leaders found so far at one eps: source rows (−1 for a seed), vectors, populations."""

    rows: np.ndarray
    vectors: np.ndarray
    counts: np.ndarray

    @classmethod
    def seeded(cls, seeds: np.ndarray) -> Leaders:
        """Leaders that start as the (k, d) ``seeds``."""
        return cls(np.full(len(seeds), -1, np.int64), seeds.astype(np.float32), np.zeros(len(seeds), np.int64))

    def hot(self) -> np.ndarray:
        return most_counted(self.counts, HOT)

    def take(self, eps: float, start: int, open_rows: np.ndarray, vectors: np.ndarray, covered: np.ndarray) -> None:
        """Add a screened chunk: its open rows through the greedy rule against all leaders so far."""
        self.counts[:len(covered)] += covered
        new = greedy_leaders(vectors, eps, self.vectors)
        if len(new):
            self.rows = np.concatenate([self.rows, start + open_rows[new]])
            self.vectors = np.vstack([self.vectors, vectors[new]])
            self.counts = np.concatenate([self.counts, np.ones(len(new), np.int64)])

def crystal_seeds(group) -> list[dict]:
    """The seeds of a store: per bulk lattice (in order of first appearance), {"lattice", "host": its
    structures' most common host element, "a": the median of their lattice constants, Å}. A store
    written before structure types records none: fcc of its first species at ASE's reference a
    (``host`` and ``a`` None)."""
    if GB_LATTICE not in group:
        return [{"lattice": "fcc", "host": None, "a": None}]
    lattices, hosts, a = group[GB_LATTICE][:], group[GB_HOST][:], group[GB_LATTICE_CONSTANT][:]
    seeds = []
    for lattice in dict.fromkeys(str(x) for x in lattices):
        mine = lattices == lattice
        host = Counter(str(h) for h in hosts[mine]).most_common(1)[0][0]
        seeds.append({"lattice": lattice, "host": host, "a": round(float(np.nanmedian(a[mine])), 3)})
    return seeds


def seed_soaps(seeds: list[dict], params: SoapParams, species: list[str]) -> np.ndarray:
    """Unit SOAP rows (k, n_feat) float32 of the ``crystal_seeds``."""
    return np.stack([perfect_fcc_soap(params, species) if s["a"] is None
                     else crystal_soap(params, species, s["lattice"], s["host"], s["a"]) for s in seeds])


def _chunk_summary(group: StoreArrays, start: int, labels: np.ndarray, sims: np.ndarray, eps: float,
                   n_seeds: int = 1) -> dict:
    """Per-GB leader counts, orphan rows and, per seed, its most similar row of one labelled chunk
    ((similarity, row) or None)."""
    gbs = group[LAE_GB][start:start + len(labels)]
    pairs, counts = gb_label_counts(gbs, labels)
    best = []
    for seed in range(n_seeds):
        mine = np.flatnonzero(labels == seed)
        best.append((float(sims[mine].max()), start + int(mine[np.argmax(sims[mine])])) if len(mine) else None)
    orphans = start + np.flatnonzero(sims < similarity_threshold(eps))
    return {"pairs": pairs, "counts": counts, "orphans": orphans, "best_seed": best}


def assign_chunk(k: int, store: str, storage_options, eps: float, leaders: np.ndarray, hot: np.ndarray,
                 gram: np.ndarray | None = None, out_group: str | None = None, n_seeds: int = 1) -> dict:
    """Worker task: label chunk k's rows (into ``out_group``, default the eps's LAE group); return
    per-GB counts, orphans (rows farther than eps from every leader) and each seed's most similar row.
    ``gram``: the leaders' ``leader_gram``, computed once by the driver."""
    group = StoreArrays(store, "r+", storage_options)
    start, rows = _chunk_rows(group, k)
    labels, sims = LeaderSearch(leaders, hot, gram).search(rows)
    out = out_group or lae_group_name(eps)
    group[f"{out}/label"][start:start + len(rows)] = labels
    group[f"{out}/similarity"][start:start + len(rows)] = sims
    return {"k": k, "rows_read": len(rows), **_chunk_summary(group, start, labels, sims, eps, n_seeds)}


def refine_chunk(k: int, store: str, storage_options, eps: float, leaders: np.ndarray, n_old: int,
                 n_seeds: int = 1) -> dict:
    """Worker task: after leaders ``n_old:`` were added, relabel the rows of chunk k that may
    now be closer to one of them (2δ ≥ d(old leader, new leader)); exact, reads the SOAP
    rows only when some row is at risk."""
    group = StoreArrays(store, "r+", storage_options)
    out = lae_group_name(eps)
    label, similarity = group[f"{out}/label"], group[f"{out}/similarity"]
    chunk = group["soap"].chunks[0]
    start = k * chunk
    labels, sims = label[start:start + chunk], similarity[start:start + chunk]
    old, new = leaders[:n_old].astype(np.float64), leaders[n_old:].astype(np.float64)
    reach = soap_distance(old @ new.T).min(axis=1) - DISTANCE_MARGIN
    risk = np.flatnonzero(2.0 * soap_distance(sims) >= reach[labels])
    rows_read = 0
    if len(risk):
        _, rows = _chunk_rows(group, k)
        rows_read = len(rows)
        s, i = ip_index(leaders[n_old:]).search(np.ascontiguousarray(rows[risk]), 1)
        better = s[:, 0] > sims[risk]
        if better.any():
            labels[risk[better]], sims[risk[better]] = n_old + i[better, 0], s[better, 0]
            label[start:start + len(labels)] = labels
            similarity[start:start + len(sims)] = sims
    return {"k": k, "rows_read": rows_read, **_chunk_summary(group, start, labels, sims, eps, n_seeds)}


def _seed(client, group) -> np.ndarray:
    """The seeds' SOAP rows (k, n_feat), computed on a worker: the same single-threaded kernel as every
    SOAP row, so the seeds (and every similarity to them) are bit-identical whichever process drives the job."""
    params = SoapParams(**group.attrs["params"]["soap"])
    return client.submit(seed_soaps, crystal_seeds(group), params, list(group.attrs["species"]), pure=False).result()


def _chunk_key(step: str, k: int) -> str:
    """A unique Dask key that names the step and the ``soap`` chunk, so a failed task is named by them."""
    import uuid

    return f"lae-{step}-soap-chunk-{k}-{uuid.uuid4().hex[:12]}"


AHEAD = 8
"""Chunks screened on the workers ahead of the driver in discovery. Fixed, not set by the number
of workers: which leaders a screening task knows (and so the float rounding of the rare row at
the threshold, and the populations that pick the hot leaders) then never depends on the
cluster, and every cluster writes a bit-identical store."""


SCATTER_BYTES = 4 * 2**20
"""Leader sets larger than this go to the workers as scattered data, once per change."""


def discover_leaders(client, store, storage_options, eps_values, ahead: int = AHEAD) -> tuple[dict, int]:
    """Leaders per eps by the greedy rule over all rows in row order: ({eps: Leaders}, rows read).

    ``ahead`` chunks are screened on the workers at a time; the leaders do not depend on it
    (up to float rounding at the threshold).
    """
    group = open_group(store, mode="r", storage_options=storage_options)
    if not stage_done(group, "soap"):
        raise StoreError(f"{store}: the soap stage is not complete; run it first")
    check_store_rows(store, group.attrs.get("soap_backend"))
    seed = _seed(client, group)
    if seed.shape[1] != group["soap"].shape[1]:
        raise StoreError(f"{store}: its SOAP rows have {group['soap'].shape[1]} numbers, this gbdist computes "
                         f"{seed.shape[1]} with the same parameters; recompute the store with `gbdist soap`")
    found = {eps: Leaders.seeded(seed) for eps in eps_values}
    n_chunks = group[PROGRESS_SOAP].shape[0]
    pending, rows_read, sent = {}, 0, {}

    def leader_vectors() -> dict:
        """The leaders for a screening task: inline while small; a large set is scattered once
        per change instead of travelling with every task."""
        vectors = {eps: f.vectors for eps, f in found.items()}
        if sum(v.nbytes for v in vectors.values()) < SCATTER_BYTES:
            return vectors
        sizes = tuple(len(v) for v in vectors.values())
        if sent.get("sizes") != sizes:
            futures = client.scatter(list(vectors.values()), hash=False)  # a dict would key the data by eps
            sent.update(sizes=sizes, vectors=dict(zip(vectors, futures)))
        return sent["vectors"]

    def submit(k: int) -> None:
        pending[k] = client.submit(screen_chunk, k, store, storage_options, leader_vectors(),
                                   {eps: f.hot() for eps, f in found.items()}, key=_chunk_key("screen", k), pure=False)

    for k in range(min(ahead, n_chunks)):
        submit(k)
    for k in with_progress(range(n_chunks), "lae discover"):
        result = pending.pop(k).result()
        rows_read += result["rows_read"]
        for eps, leaders in found.items():
            leaders.take(eps, result["start"], *result[eps])
        if k + ahead < n_chunks:
            submit(k + ahead)  # with every leader found so far: fewer open rows come back
    return found, rows_read


def _label_arrays(group: zarr.Group, out: zarr.Group) -> zarr.Group:
    """Create (empty) ``label`` (lae,) int32 and ``similarity`` (lae,) float32 in ``out``, chunked as ``soap``."""
    n_rows, chunk = group["soap"].shape[0], group["soap"].chunks[0]
    for name, dtype in (("label", np.int32), ("similarity", np.float32)):
        create_store_array(out, name, shape=(n_rows,), chunks=(chunk,), dtype=dtype, dimension_names=["lae"])
    return out


def _assign_all(client, store, storage_options, eps, vectors, hot, n_chunks, out_group=None, n_seeds=1):
    vec_future = client.scatter(vectors, broadcast=True)
    gram_future = client.scatter(leader_gram(vectors), broadcast=True)
    # last chunk first: discovery has just read the rows in order, so the last ones are the most
    # likely to be still in a page cache smaller than the store
    futures = [client.submit(assign_chunk, k, store=store, storage_options=storage_options, eps=eps,
                             key=_chunk_key("assign", k),
                             leaders=vec_future, hot=hot, gram=gram_future, out_group=out_group, n_seeds=n_seeds,
                             pure=False,
                             priority=k)
               for k in range(n_chunks)]
    return [f.result() for f in as_completed_with_progress(futures, f"lae assign eps={eps}")]


def per_gb_counts(results: list[dict], n_gb: int, n_u: int) -> np.ndarray:
    """(n_gb, n_u) int64 rows of each GB labelled with each unique LAE, from chunk summaries."""
    counts = np.zeros((n_gb, n_u), np.int64)
    for r in results:
        np.add.at(counts, (r["pairs"][0], r["pairs"][1]), r["counts"])
    return counts


@dataclass
class Assignment:
    """A store's rows against a fixed dictionary of unique LAEs (a model bundle's).

    counts (n_gb, n_u) int64: rows of each GB whose most similar unique LAE is each one;
    novel (m,) int64: rows farther than eps from every unique LAE, ascending;
    candidates (c,) int64 and candidate_soap (c, n_feat): the novel rows that the greedy rule
    makes new leaders (new candidate LAEs), candidate_count (c,): novel rows nearest each.
    """

    counts: np.ndarray
    novel: np.ndarray
    candidates: np.ndarray
    candidate_soap: np.ndarray
    candidate_count: np.ndarray
    wall_s: float


def assign_to_dictionary(client, store: str, eps: float, leaders: np.ndarray, leader_counts: np.ndarray,
                         storage_options: dict | None = None) -> Assignment:
    """Label every row of ``store`` with its most similar of ``leaders`` (n_u, n_feat) (exact,
    FAISS on the workers) into ``assigned/label`` and ``assigned/similarity``; cluster the rows
    farther than eps from every leader into new candidate LAEs by the same greedy rule."""
    t0 = time.perf_counter()
    group = open_group(store, mode="a", storage_options=storage_options)
    if not stage_done(group, "soap"):
        raise StoreError(f"{store}: the soap stage is not complete; run it first")
    out = _label_arrays(group, group.require_group(ASSIGNED_GROUP))
    results = _assign_all(client, store, storage_options, eps, leaders, most_counted(leader_counts, HOT),
                          group[PROGRESS_SOAP].shape[0], ASSIGNED_GROUP)
    counts = per_gb_counts(results, group[GB_ID].shape[0], len(leaders))
    novel = np.sort(np.concatenate([r["orphans"] for r in results]))
    novel_soap = (group["soap"].get_orthogonal_selection((novel, slice(None))) if len(novel)
                  else np.zeros((0, leaders.shape[1]), np.float32))  # each chunk read once
    new = greedy_leaders(novel_soap, eps, leaders)  # the rule of the orphan pass, after the bundle's leaders
    candidates, candidate_soap = novel[new], novel_soap[new]
    candidate_count = np.zeros(len(candidates), np.int64)
    if len(candidates):
        nearest, _ = LeaderSearch(candidate_soap, np.arange(min(HOT, len(candidates)))).search(novel_soap)
        candidate_count = np.bincount(nearest, minlength=len(candidates))
    out.attrs.update({"eps": eps, "n_unique": len(leaders), "novel_rows": len(novel), "candidates": len(candidates)})
    return Assignment(counts, novel, candidates, candidate_soap, candidate_count, time.perf_counter() - t0)


def _refine_all(client, store, storage_options, eps, vectors, n_old, n_chunks, n_seeds=1):
    vec_future = client.scatter(vectors, broadcast=True)
    futures = client.map(refine_chunk, range(n_chunks), store=store, storage_options=storage_options,
                         key=[_chunk_key("refine", k) for k in range(n_chunks)],
                         eps=eps, leaders=vec_future, n_old=n_old, n_seeds=n_seeds, pure=False)
    return [f.result() for f in as_completed_with_progress(futures, f"lae refine eps={eps}")]


def add_orphan_leaders(group, eps, rows, vectors, orphans):
    """Orphan rows (beyond eps of every leader) through the greedy rule, in row order.

    Returns (leader rows, leader vectors, new leaders, rows of ``soap`` read: whole chunks)."""
    if not len(orphans):
        return rows, vectors, 0, 0
    orphans = np.sort(orphans)
    orphan_vecs = group["soap"].get_orthogonal_selection((orphans, slice(None)))  # each chunk read once
    chunk = group["soap"].chunks[0]
    rows_read = sum(min(chunk, group["soap"].shape[0] - c * chunk) for c in np.unique(orphans // chunk))
    new = greedy_leaders(orphan_vecs, eps, vectors)
    return np.concatenate([rows, orphans[new]]), np.vstack([vectors, orphan_vecs[new]]), len(new), rows_read


def run_lae_stage(client, store: str, eps: float, storage_options: dict | None = None,
                  choose: bool = False) -> LaeReport:
    """Find the unique LAEs at ``eps``, label every row, write the LER; see the module doc.

    The run becomes the store's chosen eps if ``choose`` or if the store has none yet.
    """
    eps = check_eps(eps)
    t0 = time.perf_counter()
    client.run(reset_peak_rss)
    found, rows_read = discover_leaders(client, store, storage_options, [eps])
    leaders = found[eps]
    rows, vectors = leaders.rows, leaders.vectors
    log.info("lae eps=%.4f: %d leaders after %.1f s", eps, len(rows), time.perf_counter() - t0)
    group = open_group(store, mode="a", storage_options=storage_options)
    out = _label_arrays(group, begin_lae_run(group, eps))
    n_rows, n_chunks = group["soap"].shape[0], group[PROGRESS_SOAP].shape[0]
    n_seeds = int(np.count_nonzero(rows < 0))
    results = _assign_all(client, store, storage_options, eps, vectors, leaders.hot(), n_chunks, n_seeds=n_seeds)
    rows_read += sum(r["rows_read"] for r in results)
    orphans = np.concatenate([r["orphans"] for r in results])
    log.info("lae eps=%.4f: rows assigned after %.1f s; %d orphan rows", eps, time.perf_counter() - t0, len(orphans))
    n_old = len(rows)
    rows, vectors, n_orphan, orphan_read = add_orphan_leaders(group, eps, rows, vectors, orphans)
    rows_read += orphan_read
    if n_orphan:
        results = _refine_all(client, store, storage_options, eps, vectors, n_old, n_chunks, n_seeds)
        rows_read += sum(r["rows_read"] for r in results)
        log.info("lae eps=%.4f: %d orphan leaders; %.1f s", eps, n_orphan, time.perf_counter() - t0)
    _write_unique(group, out, eps, rows, vectors, results)
    wall = time.perf_counter() - t0
    peak = _peak_rss_gib(client)
    passes = rows_read / max(n_rows, 1)
    chosen = record_lae_run(group, eps, {"n_unique": len(rows), "orphan_leaders": n_orphan, "soap_passes": passes,
                                         "wall_s": wall, "peak_rss_gib": peak}, choose)  # last, after the data
    return LaeReport(eps, n_rows, len(rows), n_orphan, wall, lae_group_name(eps), peak, chosen, passes,
                     crystal_seeds(group))


def _peak_rss_gib(client) -> float:
    """Peak RSS of the driver plus all workers since the last reset, GiB."""
    workers = client.run(peak_rss_bytes)
    return (sum(workers.values()) + peak_rss_bytes()) / 2**30


def run_lae_sweep(client, store: str, eps_values: list[float], png, storage_options: dict | None = None):
    """Unique-LAE count for every eps (one discovery pass for all of them; no labels written).

    Saves the count-vs-eps curve to ``png``; returns (counts, eps at the knee).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gbdist.compute.leaders import knee

    found, _ = discover_leaders(client, store, storage_options, eps_values)
    counts = [len(found[eps].rows) for eps in eps_values]
    best = eps_values[knee(np.asarray(eps_values), np.asarray(counts))]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(eps_values, counts, "o-")
    ax.axvline(best, color="grey", ls="--", label=f"knee eps = {best:.4f}")
    ax.set_xlabel("eps (SOAP distance)")
    ax.set_ylabel("unique LAEs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return counts, best


def _write_unique(group, out, eps, rows, vectors, results):
    """unique/* arrays and the LER from the assignment results."""
    counts = per_gb_counts(results, group[GB_ID].shape[0], len(rows))
    seeds = crystal_seeds(group)
    source, similarity = rows.copy(), []
    for k in range(len(seeds)):  # each seed resolves to its most similar real row (the first row if it has none)
        best = max((r["best_seed"][k] for r in results if r["best_seed"][k] is not None), default=(float("nan"), 0))
        source[k] = best[1]
        similarity.append(best[0])
    write_array(out, UNIQUE_SOAP, vectors.astype(np.float32), ["unique", "feature"])
    write_array(out, UNIQUE_SOURCE, source.astype(np.int64), ["unique"])
    write_array(out, UNIQUE_GB, group[LAE_GB].get_orthogonal_selection(source), ["unique"])
    write_array(out, UNIQUE_ATOM, group[LAE_ATOM].get_orthogonal_selection(source), ["unique"])
    write_array(out, UNIQUE_COUNT, counts.sum(axis=0), ["unique"])
    write_array(out, "ler", ler_matrix(counts), ["gb", "unique"])
    out.attrs.update({"eps": eps, "seeds": seeds, "seed_source_similarity": similarity})
