"""PCA of every SOAP row with ``dask_ml.decomposition.PCA``, out of core, and the rows' coordinates.

The ``soap`` array is read as a dask array; dask-ml fits the principal axes on the workers.
The default solver, ``incremental`` (``dask_ml.decomposition.IncrementalPCA``), streams the
rows in batches of 8 chunks, so memory is bounded by the batch, not the data: measured on the
Olmsted store (3.1 GB of SOAP rows) at 36.6 s and 1.21 GiB per worker. ``tsqr`` (exact) and
``randomized`` (``dask_ml.decomposition.PCA``) hold the whole array in worker memory: they
suit small stores only (on Olmsted both exceeded a 6 GiB worker). The components,
mean, explained variance and each row's first k coordinates go to the store (``map/*``, see
:mod:`gbdist.store.schema`), so later tools can place new LAEs on the same map.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
from dask_ml.decomposition import PCA, IncrementalPCA

from gbdist.errors import StoreError
from gbdist.rss import peak_rss_bytes, reset_peak_rss
from gbdist.store.schema import MAP_GROUP, create_store_array, mark_stage, open_group, stage_done, write_array

log = logging.getLogger(__name__)


@dataclass
class PcaResult:
    """Principal axes of the SOAP rows: components (k, n_feat), mean (n_feat,), explained
    variance (k,) and its ratio to the total variance (k,); wall s; peak RSS of the largest worker, GiB."""

    components: np.ndarray
    mean: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    wall_s: float
    peak_rss_gib_per_worker: float

    def project(self, rows: np.ndarray) -> np.ndarray:
        """Coordinates (n, k) of unit SOAP rows (n, n_feat) on the map."""
        return (np.asarray(rows, np.float64) - self.mean) @ self.components.T


BATCH_CHUNKS = 8
"""soap chunks per IncrementalPCA batch."""


def run_pca_stage(client, store: str, n_components: int = 10, solver: str = "incremental", seed: int = 0,
                  storage_options: dict | None = None) -> PcaResult:
    """Fit the PCA of ``soap`` on the workers and write ``map/*``, coordinates included."""
    group = open_group(store, mode="a", storage_options=storage_options)
    if not stage_done(group, "soap"):
        raise StoreError(f"{store}: the soap stage is not complete; run it first")
    t0 = time.perf_counter()
    client.run(reset_peak_rss)
    soap = da.from_zarr(group["soap"])
    if solver == "incremental":
        batch = BATCH_CHUNKS * group["soap"].chunks[0]
        pca, rows = IncrementalPCA(n_components=n_components, batch_size=batch), soap.rechunk((batch, soap.shape[1]))
    else:
        pca, rows = PCA(n_components=n_components, svd_solver=solver, iterated_power=4, random_state=seed), soap
    with dask.config.set(scheduler=client):
        pca.fit(rows)
        mean = np.asarray(dask.compute(pca.mean_)[0], np.float64)
    components = np.asarray(pca.components_, np.float64)
    log.info("map: %d components of %d rows in %.1f s", n_components, soap.shape[0], time.perf_counter() - t0)
    out = group.require_group(MAP_GROUP)
    target, squares = _write_coords(client, group, soap, mean, components)
    n = soap.shape[0]
    # the variance along each stored axis, measured on the stored coordinates; the total from the sum of squares
    variance = target[...].astype(np.float64).var(axis=0, ddof=1)
    ratio = variance / ((squares / n - mean @ mean) * n / (n - 1))
    write_array(out, "components", components.astype(np.float32), ["pc", "feature"])
    write_array(out, "mean", mean.astype(np.float32), ["feature"])
    write_array(out, "explained_variance", variance, ["pc"])
    write_array(out, "explained_variance_ratio", ratio, ["pc"])
    wall = time.perf_counter() - t0
    peak = max(client.run(peak_rss_bytes).values()) / 2**30
    result = PcaResult(components, mean, variance, ratio, wall, peak)
    mark_stage(group, "map", wall_s=wall, n_components=n_components, solver=solver,
               peak_rss_gib_per_worker=peak)
    return result


def _write_coords(client, group, soap, mean: np.ndarray, components: np.ndarray):
    """Write ``map/coords`` (every row's coordinates) on the workers, one pass over ``soap``;
    returns (the coords array, the sum of squares of all rows)."""
    k = len(components)
    coords = soap.map_blocks(_project, mean, components, chunks=(soap.chunks[0], (k,)), dtype=np.float32)
    target = create_store_array(group.require_group(MAP_GROUP), "coords", shape=(soap.shape[0], k),
                                chunks=(group["soap"].chunks[0], k), dtype=np.float32, dimension_names=["lae", "pc"])
    with dask.config.set(scheduler=client):  # each task writes its own coords chunk; sum of squares beside
        _, squares = dask.compute(da.store(coords, target, lock=False, compute=False),
                                  (soap.astype(np.float64) ** 2).sum())
    return target, squares


def project_onto(client, store: str, pca: PcaResult, source: str, storage_options: dict | None = None) -> PcaResult:
    """Place the rows of ``store`` on another store's map (``pca``, read from ``source``): write its
    ``map/*`` with those axes, every row's coordinates included. Same result type, with this
    run's wall and peak RSS."""
    group = open_group(store, mode="a", storage_options=storage_options)
    if not stage_done(group, "soap"):
        raise StoreError(f"{store}: the soap stage is not complete; run it first")
    t0 = time.perf_counter()
    client.run(reset_peak_rss)
    _write_coords(client, group, da.from_zarr(group["soap"]), pca.mean, pca.components)
    out = group[MAP_GROUP]
    write_array(out, "components", pca.components.astype(np.float32), ["pc", "feature"])
    write_array(out, "mean", pca.mean.astype(np.float32), ["feature"])
    write_array(out, "explained_variance", pca.explained_variance, ["pc"])
    write_array(out, "explained_variance_ratio", pca.explained_variance_ratio, ["pc"])
    wall = time.perf_counter() - t0
    peak = max(client.run(peak_rss_bytes).values()) / 2**30
    mark_stage(group, "map", wall_s=wall, n_components=len(pca.components), onto=source, peak_rss_gib_per_worker=peak)
    return PcaResult(pca.components, pca.mean, pca.explained_variance, pca.explained_variance_ratio, wall, peak)


def _project(block: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    return ((block.astype(np.float64) - mean) @ components.T).astype(np.float32)


def read_pca(group) -> PcaResult:
    """The PCA stored by :func:`run_pca_stage`."""
    out = group[MAP_GROUP]
    info = group.attrs.get("stages", {}).get("map", {})
    return PcaResult(out["components"][:].astype(np.float64), out["mean"][:].astype(np.float64),
                     out["explained_variance"][:], out["explained_variance_ratio"][:], info.get("wall_s", 0.0),
                     info.get("peak_rss_gib_per_worker", 0.0))
