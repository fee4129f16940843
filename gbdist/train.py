"""Final models for ``gbdist learn``: CV-chosen settings, then distributed XGBoost on all labelled GBs.

The features are read by the workers straight from the Zarr store as dask arrays and fed to
``xgboost.dask`` through a ``DaskDMatrix``; models are saved as XGBoost UBJSON (no pickle).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dask.array as da
import numpy as np
import xgboost as xgb
import xgboost.dask  # noqa: F401  (registers xgb.dask)

from gbdist.labels import Property
from gbdist.learn import ModelParams, choose_by_cv, training_weights
from gbdist.stages.lae import lae_group_name

log = logging.getLogger("gbdist")


def representation_array(store: str, rep: str, eps: float | None, storage_options: dict | None) -> da.Array:
    """The representation as a dask array read from the store: ``asr`` or the LER of ``eps``."""
    component = "asr" if rep == "ASR" else f"{lae_group_name(eps)}/ler"
    return da.from_zarr(store, component=component, storage_options=storage_options)


def fit_distributed(client, X: da.Array, prop: Property, params: dict, n_rounds: int,
                    model: ModelParams, feature_names: list[str]) -> xgb.Booster:
    """Train one booster with xgboost.dask on the rows of ``prop`` (X (n_gb, n_feat) dask array)."""
    n_workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    rows = int(np.ceil(len(prop.rows) / n_workers))
    X_rows = X[prop.rows].rechunk((rows, X.shape[1]))
    y = da.from_array(prop.y, chunks=X_rows.chunks[0])
    weights = training_weights(prop.y, prop.kind, model)
    w = da.from_array(weights, chunks=X_rows.chunks[0]) if weights is not None else None
    dtrain = xgb.dask.DaskDMatrix(client, X_rows, y, weight=w, feature_names=feature_names)
    params = {k: v for k, v in params.items() if k != "nthread"}
    return xgb.dask.train(client, params, dtrain, num_boost_round=n_rounds)["booster"]


def train_models(client, store: str, reps: dict[str, tuple[np.ndarray, list[str]]], props: list[Property],
                 out: Path, eps: float | None, model: ModelParams | None = None, seed: int = 0,
                 storage_options: dict | None = None) -> list[dict]:
    """For each property × representation: choose settings by CV on all labelled GBs (a worker
    task), fit with xgboost.dask, save ``<property>_<rep>.ubj``; write and return ``models.json``."""
    model = model or ModelParams()
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for prop in props:
        for rep, (X, names) in reps.items():
            log.info("learn: %s on %s (%d GBs)", prop.name, rep, len(prop.rows))
            choice = client.submit(choose_by_cv, X[prop.rows], prop.y, prop.kind, prop.n_classes,
                                   model, seed, pure=False).result()
            booster = fit_distributed(client, representation_array(store, rep, eps, storage_options),
                                      prop, choice.params, choice.n_rounds, model, names)
            path = out / f"{prop.name}_{rep}.ubj"
            booster.save_model(path)
            records.append({"property": prop.name, "representation": rep, "kind": prop.kind,
                            "classes": list(prop.classes), "model": path.name, "n_train": len(prop.rows),
                            "n_rounds": choice.n_rounds, "cv_metric": choice.cv_metric,
                            "cv_score": choice.cv_score, "candidates": choice.candidates,
                            "params": choice.params, "features": len(names),
                            "ler_eps": eps if rep == "LER" else None})
    (out / "models.json").write_text(json.dumps({"store": store, "seed": seed, "model": model.model_dump(),
                                                 "models": records}, indent=1))
    return records
