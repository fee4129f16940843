"""Unique-LAE stage driver: leader discovery over partitions, merge, assignment and LER.

1. Discovery, in parallel: each partition (a run of consecutive ``soap`` chunks) streams
   its chunks and finds its own leaders, seeded with perfect fcc.
2. Merge, on the driver: the partitions' leaders, in partition order, go through the same
   greedy rule (seeded with fcc): the global leaders.
3. Assignment, in parallel, one task per chunk: each row's most similar global leader
   (``LeaderSearch``: the most populated leaders first, FAISS for the rows they do not
   settle). Rows farther than eps from every leader (possible when a partition's leader
   was merged away) are gathered and pass through the greedy rule in row order as
   further leaders. So every row lies within eps of its leader.
4. Refinement, only where needed: a row at distance δ from its leader L can be closer to
   a new leader N only if 2δ ≥ d(L, N); only chunks holding such rows are read again,
   and only those rows are compared with the new leaders.

Results for one eps are written where :mod:`gbdist.store.schema` says (its LAE group); the
first run in a store, or one run with ``choose=True``, becomes the store's chosen eps.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import zarr

from gbdist.compute.leaders import (
    DISTANCE_MARGIN,
    HOT,
    LeaderSearch,
    greedy_leaders,
    ip_index,
    ler_matrix,
    most_counted,
    perfect_fcc_soap,
    similarity_threshold,
    soap_distance,
)
from gbdist.compute.soap import SoapParams
from gbdist.errors import StoreError
from gbdist.stages.progress import as_completed_with_progress
from gbdist.stages.rss import peak_rss_bytes, reset_peak_rss
from gbdist.store.schema import (
    ASSIGNED_GROUP,
    begin_lae_run,
    check_eps,
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


def _chunk_rows(group: zarr.Group, k: int) -> tuple[int, np.ndarray]:
    """(first row, rows) of soap chunk k."""
    soap = group["soap"]
    start = k * soap.chunks[0]
    return start, soap[start:start + soap.chunks[0]]


def discover_partition(chunks: list[int], store: str, storage_options, eps_values: list[float],
                       seed: np.ndarray) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Worker task: leaders of one partition for each eps: {eps: (global rows, vectors)}."""
    found = {eps: ([], []) for eps in eps_values}
    group = zarr.open_group(store, mode="r", storage_options=storage_options)
    for k in chunks:
        start, rows = _chunk_rows(group, k)
        for eps in eps_values:
            idx, vecs = found[eps]
            prior = np.vstack([seed[None, :], *vecs]) if vecs else seed[None, :]
            new = greedy_leaders(rows, eps, prior)
            if len(new):
                idx.append(start + new)
                vecs.append(rows[new])
    return {eps: (np.concatenate(i) if i else np.zeros(0, np.int64),
                  np.vstack(v) if v else np.zeros((0, len(seed)), np.float32))
            for eps, (i, v) in found.items()}


def _chunk_summary(group: zarr.Group, start: int, labels: np.ndarray, sims: np.ndarray, eps: float) -> dict:
    """Per-GB leader counts, orphan rows and the most fcc-like row of one labelled chunk."""
    gbs = group["lae/gb"][start:start + len(labels)]
    pairs, counts = np.unique(np.stack([gbs, labels]), axis=1, return_counts=True)
    fcc_rows = np.flatnonzero(labels == 0)
    best = (float(sims[fcc_rows].max()), start + int(fcc_rows[np.argmax(sims[fcc_rows])])) if len(fcc_rows) else None
    orphans = start + np.flatnonzero(sims < similarity_threshold(eps))
    return {"pairs": pairs, "counts": counts, "orphans": orphans, "best_fcc": best}


def hot_leaders(store: str, storage_options, leaders: np.ndarray, samples: int = 4) -> np.ndarray:
    """Worker task: the ``HOT`` leaders most rows of a few evenly spaced chunks fall to."""
    group = zarr.open_group(store, mode="r", storage_options=storage_options)
    n_chunks = -(-group["soap"].shape[0] // group["soap"].chunks[0])
    counts = np.zeros(len(leaders), np.int64)
    for k in np.unique(np.linspace(0, n_chunks - 1, samples).round().astype(int)):
        _, labels = ip_index(leaders).search(_chunk_rows(group, int(k))[1], 1)
        counts += np.bincount(labels[:, 0], minlength=len(leaders))
    return most_counted(counts, HOT)


def assign_chunk(k: int, store: str, storage_options, eps: float, leaders: np.ndarray, hot: np.ndarray,
                 write: bool, out_group: str | None = None) -> dict:
    """Worker task: label chunk k's rows (into ``out_group``, default the eps's LAE group); return
    per-GB counts, orphans (rows farther than eps from every leader) and the best fcc row."""
    group = zarr.open_group(store, mode="r+" if write else "r", storage_options=storage_options)
    start, rows = _chunk_rows(group, k)
    labels, sims = LeaderSearch(leaders, hot).search(rows)
    if write:
        out = group[out_group or lae_group_name(eps)]
        out["label"][start:start + len(rows)] = labels
        out["similarity"][start:start + len(rows)] = sims
    return {"k": k, **_chunk_summary(group, start, labels, sims, eps)}


def refine_chunk(k: int, store: str, storage_options, eps: float, leaders: np.ndarray, n_old: int) -> dict:
    """Worker task: after leaders ``n_old:`` were added, relabel the rows of chunk k that may
    now be closer to one of them (2δ ≥ d(old leader, new leader)); exact, reads the SOAP
    rows only when some row is at risk."""
    group = zarr.open_group(store, mode="r+", storage_options=storage_options)
    out = group[lae_group_name(eps)]
    chunk = group["soap"].chunks[0]
    start = k * chunk
    labels, sims = out["label"][start:start + chunk], out["similarity"][start:start + chunk]
    old, new = leaders[:n_old].astype(np.float64), leaders[n_old:].astype(np.float64)
    reach = soap_distance(old @ new.T).min(axis=1) - DISTANCE_MARGIN
    risk = np.flatnonzero(2.0 * soap_distance(sims) >= reach[labels])
    if len(risk):
        s, i = ip_index(leaders[n_old:]).search(np.ascontiguousarray(_chunk_rows(group, k)[1][risk]), 1)
        better = s[:, 0] > sims[risk]
        if better.any():
            labels[risk[better]], sims[risk[better]] = n_old + i[better, 0], s[better, 0]
            out["label"][start:start + len(labels)] = labels
            out["similarity"][start:start + len(sims)] = sims
    return {"k": k, "read": bool(len(risk)), **_chunk_summary(group, start, labels, sims, eps)}


def _partitions(n_chunks: int, n_parts: int) -> list[list[int]]:
    bounds = np.linspace(0, n_chunks, n_parts + 1).round().astype(int)
    return [list(range(a, b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _seed(client, group) -> np.ndarray:
    """Perfect-fcc SOAP, computed on a worker: the same single-threaded kernel as every SOAP row,
    so the seed (and every similarity to it) is bit-identical whichever process drives the job."""
    params = SoapParams(**group.attrs["params"]["soap"])
    return client.submit(perfect_fcc_soap, params, list(group.attrs["species"]), pure=False).result()


def discover_leaders(client, store, storage_options, eps_values, partitions: int):
    """Global leaders per eps after discovery and merge: {eps: (rows, vectors)}; row −1 is fcc."""
    group = open_group(store, mode="r", storage_options=storage_options)
    if not stage_done(group, "soap"):
        raise StoreError(f"{store}: the soap stage is not complete; run it first")
    seed = _seed(client, group)
    n_chunks = group["progress/soap"].shape[0]
    parts = _partitions(n_chunks, partitions)
    futures = client.map(discover_partition, parts, store=store, storage_options=storage_options,
                         eps_values=list(eps_values), seed=seed, pure=False)
    order = {f.key: i for i, f in enumerate(futures)}
    found = sorted(((order[f.key], f.result()) for f in as_completed_with_progress(futures, "lae discover")),
                   key=lambda r: r[0])
    leaders = {}
    for eps in eps_values:
        rows = np.concatenate([p[eps][0] for _, p in found])
        vecs = np.vstack([p[eps][1] for _, p in found])
        keep = greedy_leaders(vecs, eps, seed[None, :])
        leaders[eps] = (np.concatenate([[-1], rows[keep]]), np.vstack([seed[None, :], vecs[keep]]))
    return leaders


def _label_arrays(group: zarr.Group, out: zarr.Group) -> zarr.Group:
    """Create (empty) ``label`` (lae,) int32 and ``similarity`` (lae,) float32 in ``out``, chunked as ``soap``."""
    n_rows, chunk = group["soap"].shape[0], group["soap"].chunks[0]
    for name, dtype in (("label", np.int32), ("similarity", np.float32)):
        out.create_array(name, shape=(n_rows,), chunks=(chunk,), dtype=dtype, dimension_names=["lae"], overwrite=True)
    return out


def _assign_all(client, store, storage_options, eps, vectors, write, n_chunks, out_group=None, hot=None):
    if hot is None:
        hot = client.submit(hot_leaders, store, storage_options, vectors, pure=False).result()
    vec_future = client.scatter(vectors, broadcast=True)
    futures = client.map(assign_chunk, range(n_chunks), store=store, storage_options=storage_options,
                         eps=eps, leaders=vec_future, hot=hot, write=write, out_group=out_group, pure=False)
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
    results = _assign_all(client, store, storage_options, eps, leaders, True, group["progress/soap"].shape[0],
                          ASSIGNED_GROUP, most_counted(leader_counts, HOT))
    counts = per_gb_counts(results, group["gb/id"].shape[0], len(leaders))
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


def _refine_all(client, store, storage_options, eps, vectors, n_old, n_chunks):
    vec_future = client.scatter(vectors, broadcast=True)
    futures = client.map(refine_chunk, range(n_chunks), store=store, storage_options=storage_options,
                         eps=eps, leaders=vec_future, n_old=n_old, pure=False)
    return [f.result() for f in as_completed_with_progress(futures, f"lae refine eps={eps}")]


def add_orphan_leaders(group, eps, rows, vectors, orphans):
    """Orphan rows (beyond eps of every leader) through the greedy rule, in row order."""
    if not len(orphans):
        return rows, vectors, 0
    orphans = np.sort(orphans)
    orphan_vecs = group["soap"].get_orthogonal_selection((orphans, slice(None)))  # each chunk read once
    new = greedy_leaders(orphan_vecs, eps, vectors)
    return np.concatenate([rows, orphans[new]]), np.vstack([vectors, orphan_vecs[new]]), len(new)


def run_lae_stage(client, store: str, eps: float, storage_options: dict | None = None,
                  partitions: int | None = None, choose: bool = False) -> LaeReport:
    """Find the unique LAEs at ``eps``, label every row, write the LER; see the module doc.

    The run becomes the store's chosen eps if ``choose`` or if the store has none yet.
    """
    from gbdist.stages.client import n_worker_threads

    eps = check_eps(eps)
    t0 = time.perf_counter()
    client.run(reset_peak_rss)
    partitions = partitions or 2 * n_worker_threads(client)
    rows, vectors = discover_leaders(client, store, storage_options, [eps], partitions)[eps]
    log.info("lae eps=%.4f: %d leaders from %d partitions after %.1f s", eps, len(rows), partitions,
             time.perf_counter() - t0)
    group = open_group(store, mode="a", storage_options=storage_options)
    out = _label_arrays(group, begin_lae_run(group, eps))
    n_rows, n_chunks = group["soap"].shape[0], group["progress/soap"].shape[0]
    results = _assign_all(client, store, storage_options, eps, vectors, True, n_chunks)
    orphans = np.concatenate([r["orphans"] for r in results])
    log.info("lae eps=%.4f: rows assigned after %.1f s; %d orphan rows", eps, time.perf_counter() - t0, len(orphans))
    n_old = len(rows)
    rows, vectors, n_orphan = add_orphan_leaders(group, eps, rows, vectors, orphans)
    if n_orphan:
        results = _refine_all(client, store, storage_options, eps, vectors, n_old, n_chunks)
        log.info("lae eps=%.4f: %d orphan leaders; %d of %d chunks read again; %.1f s", eps, n_orphan,
                 sum(r["read"] for r in results), n_chunks, time.perf_counter() - t0)
    _write_unique(group, out, eps, rows, vectors, results)
    wall = time.perf_counter() - t0
    peak = _peak_rss_gib(client)
    chosen = record_lae_run(group, eps, {"n_unique": len(rows), "orphan_leaders": n_orphan, "partitions": partitions,
                                         "wall_s": wall, "peak_rss_gib": peak}, choose)  # last, after the data
    return LaeReport(eps, n_rows, len(rows), n_orphan, wall, lae_group_name(eps), peak, chosen)


def _peak_rss_gib(client) -> float:
    """Peak RSS of the driver plus all workers since the last reset, GiB."""
    workers = client.run(peak_rss_bytes)
    return (sum(workers.values()) + peak_rss_bytes()) / 2**30


def run_lae_sweep(client, store: str, eps_values: list[float], png, partitions: int | None = None,
                  storage_options: dict | None = None):
    """Unique-LAE count for every eps (discovery, merge and orphan pass; no labels written).

    Saves the count-vs-eps curve to ``png``; returns (counts, eps at the knee).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gbdist.compute.leaders import knee
    from gbdist.stages.client import n_worker_threads

    partitions = partitions or 2 * n_worker_threads(client)
    leaders = discover_leaders(client, store, storage_options, eps_values, partitions)
    group = open_group(store, mode="r", storage_options=storage_options)
    n_chunks = group["progress/soap"].shape[0]
    counts = []
    for eps in eps_values:
        rows, vectors = leaders[eps]
        results = _assign_all(client, store, storage_options, eps, vectors, False, n_chunks)
        orphans = np.concatenate([r["orphans"] for r in results])
        rows, vectors, _ = add_orphan_leaders(group, eps, rows, vectors, orphans)
        counts.append(len(rows))
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
    counts = per_gb_counts(results, group["gb/id"].shape[0], len(rows))
    best = max(r["best_fcc"] for r in results if r["best_fcc"] is not None)
    source = rows.copy()
    source[0] = best[1]  # the fcc seed resolves to the most fcc-like real row
    write_array(out, "unique/soap", vectors.astype(np.float32), ["unique", "feature"])
    write_array(out, "unique/source", source.astype(np.int64), ["unique"])
    write_array(out, "unique/gb", group["lae/gb"].get_orthogonal_selection(source), ["unique"])
    write_array(out, "unique/atom", group["lae/atom"].get_orthogonal_selection(source), ["unique"])
    write_array(out, "unique/count", counts.sum(axis=0), ["unique"])
    write_array(out, "ler", ler_matrix(counts), ["gb", "unique"])
    out.attrs.update({"eps": eps, "seed": "perfect fcc (leader 0)", "seed_source_similarity": best[0]})
