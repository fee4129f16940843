"""Per-atom (site) models: XGBoost trained with ``xgboost.dask`` on the SOAP rows themselves, and
scored with whole boundaries held out.

The rows of the training boundaries go from the store's ``soap`` array (a dask array, chunks of
rows) straight into a ``DaskQuantileDMatrix`` on the workers: the driver holds only 1-d arrays
(the per-row site values, boundary and unique-LAE of each row), never the rows. The quantile
sketch, the number of rounds (early stopping) and the building-block energies are all fitted on
the training boundaries only; a test boundary's atoms are never seen before it is scored.

A held-out boundary's energy is the sum of its predicted excess energies by the window rule
(``compute.boundary_energy.window_energy``, the plane placed by the predictions themselves) over
its area; the additive model predicts each row by the mean excess of its unique LAE in the
training rows (E_GB ≈ Σ_k n_k ε_k / A) and is summed by the same rule.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import dask.array as da
import numpy as np
import xgboost as xgb
import xgboost.dask  # noqa: F401  (registers xgb.dask)
from pydantic import BaseModel, ConfigDict, Field

from gbdist.compute.boundary_energy import block_energies, window_energy
from gbdist.learning.models import cut_at_best
from gbdist.rss import peak_rss_bytes, reset_peak_rss
from gbdist.store.schema import GB_NORMAL, GB_OFFSET, LAE_GB, SOAP, UNIQUE_COUNT, lae_path, open_group, resolve_eps
from gbdist.store.structures import SITE, boundary_areas, column_at, site_depths

log = logging.getLogger(__name__)

MEV = 1000.0


class SiteModelParams(BaseModel):
    """The XGBoost settings of a per-atom model. Rounds stop early on ``validation`` of the
    training boundaries (whole boundaries, drawn from the training ones only)."""

    model_config = ConfigDict(extra="forbid")
    eta: float = Field(0.3, gt=0)
    max_depth: int = Field(6, ge=1)
    min_child_weight: float = Field(1.0, ge=0)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.3, gt=0, le=1)
    max_bin: int = Field(64, ge=2)
    max_rounds: int = Field(200, ge=1)
    early_stopping: int = Field(20, ge=1)
    validation: float = Field(0.2, gt=0, lt=1)
    memory: Literal["workers", "external"] = Field(
        "workers", description="workers: xgboost.dask holds the training rows in the workers' memory (fast); external: "
        "each worker streams its Zarr chunks into XGBoost's external-memory pages (bounded, for stores larger than memory)")

    def booster(self, seed: int) -> dict:
        return {"tree_method": "hist", "objective": "reg:squarederror", "eval_metric": "rmse", "eta": self.eta,
                "max_depth": self.max_depth, "min_child_weight": self.min_child_weight, "subsample": self.subsample,
                "colsample_bytree": self.colsample_bytree, "max_bin": self.max_bin, "seed": seed}


@dataclass
class SiteRows:
    """What a site model needs on the driver, one entry per LAE row (n,) or per boundary (n_gb,).

    gb : (n,) boundary of each row; offsets (n_gb + 1,): rows of boundary i are offsets[i]:offsets[i+1].
    value : (n,) the site property (eV for an energy; NaN where unknown).
    depth : (n,) Å along the boundary normal (NaN without a flat boundary).
    label : (n,) unique LAE of each row at ``eps``; n_unique of them.
    area : (n_gb,) Å², NaN without a flat boundary.
    """

    gb: np.ndarray
    offsets: np.ndarray
    value: np.ndarray
    depth: np.ndarray
    label: np.ndarray
    n_unique: int
    area: np.ndarray
    eps: float

    def rows_of(self, gbs: np.ndarray) -> np.ndarray:
        """(n,) bool: the rows of the boundaries ``gbs`` (store positions)."""
        mine = np.zeros(len(self.offsets) - 1, bool)
        mine[np.asarray(gbs, np.int64)] = True
        return mine[self.gb]


def read_site_rows(group, store: str, column: str, eps: float | None = None) -> SiteRows:
    """The site property ``column`` (a per-atom column of the store) at every LAE row, with each row's
    boundary, depth and unique LAE (the LAE run at ``eps``, default the store's chosen one)."""
    eps = resolve_eps(group, store, eps)
    gb = group[LAE_GB][:].astype(np.int64)
    sites = group[SITE][:]
    label = group[lae_path(eps, "label")][:].astype(np.int64)
    return SiteRows(gb=gb, offsets=group[GB_OFFSET][:], value=column_at(group, column, sites),
                    depth=site_depths(group, sites, group[GB_NORMAL][:][gb]), label=label,
                    n_unique=int(group[lae_path(eps, UNIQUE_COUNT)].shape[0]), area=boundary_areas(group), eps=eps)


@dataclass(frozen=True)
class SoapRows:
    """The store's SOAP rows (lae, feature) float32, read by the workers: where they are, and as a
    dask array (one block per Zarr chunk)."""

    store: str
    storage_options: dict | None = None

    def array(self) -> da.Array:
        return da.from_zarr(self.store, component=SOAP, storage_options=self.storage_options)

    @property
    def chunk_rows(self) -> int:
        """Rows per Zarr chunk of ``soap``."""
        return int(open_group(self.store, storage_options=self.storage_options)[SOAP].chunks[0])


def _matrix(client, X: da.Array, y: np.ndarray, rows: np.ndarray, max_bin: int, ref=None):
    """A DaskQuantileDMatrix of the rows ``rows`` (bool (n,)) of X and y; the labels follow X's blocks."""
    X_rows = X[rows]
    y_rows = da.from_array(y[rows].astype(np.float32), chunks=(X_rows.chunks[0],))
    return xgb.dask.DaskQuantileDMatrix(client, X_rows, y_rows, max_bin=max_bin, ref=ref)


def fit_site_model(client, soap: SoapRows, y: np.ndarray, fit_rows: np.ndarray, valid_rows: np.ndarray,
                   params: SiteModelParams, seed: int = 0, repeat: int = 1) -> xgb.Booster:
    """Train on ``fit_rows`` (bool (n,)) of the SOAP rows (n, n_feat) and y (n,), stopping when the RMSE
    on ``valid_rows`` has not improved for ``params.early_stopping`` rounds; returns the booster cut at
    its best round. The validation rows are binned with the training rows' quantiles. ``params.memory``:
    ``workers`` (``xgboost.dask``, every training row in the workers' memory) or ``external``
    (``learning.extmem``: each worker streams its chunks, memory bounded by a chunk and its pages).
    ``repeat`` > 1 (external memory only) deals every training row that many times: a scale-up."""
    if params.memory == "external":
        from gbdist.learning.extmem import fit_external

        return fit_external(client, soap.store, soap.storage_options, y, fit_rows, valid_rows, soap.chunk_rows,
                            params.booster(seed), params.max_rounds, params.early_stopping, params.max_bin, repeat)
    if repeat != 1:
        raise ValueError("repeat: only the external-memory fit deals its rows again")
    X = soap.array()
    dtrain = _matrix(client, X, y, fit_rows, params.max_bin)
    dvalid = _matrix(client, X, y, valid_rows, params.max_bin, ref=dtrain)
    out = xgb.dask.train(client, params.booster(seed), dtrain, num_boost_round=params.max_rounds,
                         evals=[(dvalid, "valid")], early_stopping_rounds=params.early_stopping, verbose_eval=False)
    return cut_at_best(out["booster"])


def train_site_model(client, soap: SoapRows, rows: SiteRows, train: np.ndarray, params: SiteModelParams,
                     seed: int = 0, repeat: int = 1) -> xgb.Booster:
    """A per-atom model of ``rows.value`` from the rows (with a value) of the boundaries ``train``; a
    fraction ``params.validation`` of them, drawn by ``seed``, only stops the rounds (``repeat``:
    ``fit_site_model``'s)."""
    known = np.isfinite(rows.value)
    fit, valid = split_boundaries(train, params.validation, seed)
    return fit_site_model(client, soap, rows.value, rows.rows_of(fit) & known, rows.rows_of(valid) & known, params, seed,
                          repeat)


def predict_site_rows(client, booster: xgb.Booster, soap: SoapRows, rows: np.ndarray) -> np.ndarray:
    """(rows.sum(),) float64, the predictions for the rows ``rows`` (bool (n,)), made on the workers."""
    return xgb.dask.inplace_predict(client, booster, soap.array()[rows]).compute().astype(np.float64)


def boundary_energies_from_rows(rows: SiteRows, excess: np.ndarray, gbs: np.ndarray, window: float) -> np.ndarray:
    """(len(gbs),) J/m²: each boundary's energy by the window rule from per-row excess energies (n,) eV."""
    out = np.full(len(gbs), np.nan)
    for k, gb in enumerate(gbs):
        lo, hi = rows.offsets[gb], rows.offsets[gb + 1]
        if np.isfinite(rows.area[gb]) and hi > lo:
            out[k] = window_energy(rows.depth[lo:hi], excess[lo:hi], rows.area[gb], window)[0]
    return out


def split_boundaries(train: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training boundaries ``train`` cut into (fit, validation) by a random ``fraction`` (≥ 1)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.asarray(train))
    n_valid = max(1, int(round(fraction * len(order))))
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination of ``pred`` for ``y`` (m,); NaN if y does not vary."""
    spread = float(np.sum((y - y.mean()) ** 2))
    return float(1.0 - np.sum((pred - y) ** 2) / spread) if spread > 0 else float("nan")


def evaluate_site_split(client, soap: SoapRows, rows: SiteRows, train: np.ndarray, test: np.ndarray,
                        params: SiteModelParams, window: float, seed: int) -> dict:
    """Fit on the rows of the boundaries ``train`` (store positions), score on those of ``test``.

    Returns per-atom MAE (meV) and R² over the test rows with a known value, the test boundaries'
    energies (J/m²) summed from the predicted rows (``site``), from the additive building-block
    model (``additive``) and from the rows' own values (``truth``: the window rule's ceiling); the
    test rows' predictions, the rounds, the fit's wall time and the largest worker's peak RSS (GiB).
    """
    t0 = time.perf_counter()
    client.run(reset_peak_rss)
    known = np.isfinite(rows.value)
    booster = train_site_model(client, soap, rows, train, params, seed)
    test_rows = rows.rows_of(test)
    predicted = np.full(len(rows.gb), np.nan)
    predicted[test_rows] = predict_site_rows(client, booster, soap, test_rows)
    train_rows = rows.rows_of(train) & known
    _, block_mean, _ = block_energies(rows.label[train_rows], rows.value[train_rows], rows.n_unique)
    additive = np.where(np.isfinite(block_mean), block_mean, np.nanmean(rows.value[train_rows]))[rows.label]
    scored = test_rows & known
    y, p = rows.value[scored], predicted[scored]
    return {"mae_mev": float(np.mean(np.abs(p - y))) * MEV, "r2": r2(y, p), "rows": int(scored.sum()),
            "n_rounds": booster.num_boosted_rounds(), "site": boundary_energies_from_rows(rows, predicted, test, window),
            "additive": boundary_energies_from_rows(rows, additive, test, window),
            "truth": boundary_energies_from_rows(rows, rows.value, test, window), "predicted": predicted[test_rows],
            "wall_s": time.perf_counter() - t0,
            "peak_rss_gib": max(client.run(peak_rss_bytes).values()) / 2 ** 30}
