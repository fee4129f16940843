"""Final models for ``gbdist learn``: CV-chosen settings, then distributed XGBoost on all labelled GBs.

Tree models train with ``xgboost.dask``; a linear (gblinear) choice, which xgboost.dask does
not support, trains in one worker task (the per-GB matrices are small).

The features are read by the workers straight from the Zarr store as dask arrays, standardised
with the training rows' mean and scale, and fed to ``xgboost.dask`` through a ``DaskDMatrix``.
Models are saved as XGBoost UBJSON (no pickle), with the standardisation in the booster's
``scaler`` attribute: ``load_model`` gives both back.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dask.array as da
import numpy as np
import xgboost as xgb
import xgboost.dask  # noqa: F401  (registers xgb.dask)

from gbdist.learning.labels import Property
from gbdist.learning.models import ModelParams, Scaler, choose_by_cv, fit_choice, training_weights
from gbdist.store.representations import representation_array
from gbdist.store.schema import open_group

log = logging.getLogger(__name__)


def fit_distributed(client, X: da.Array, prop: Property, params: dict, n_rounds: int,
                    model: ModelParams, feature_names: list[str], scaler: Scaler) -> xgb.Booster:
    """Train one booster with xgboost.dask on the standardised rows of ``prop`` (X (n_gb, n_feat))."""
    n_workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    rows = int(np.ceil(len(prop.rows) / n_workers))
    X_rows = ((X[prop.rows] - scaler.mean) / scaler.scale).astype(np.float32).rechunk((rows, X.shape[1]))
    y = da.from_array(prop.y, chunks=X_rows.chunks[0])
    weights = training_weights(prop.y, prop.kind, model)
    w = da.from_array(weights, chunks=X_rows.chunks[0]) if weights is not None else None
    dtrain = xgb.dask.DaskDMatrix(client, X_rows, y, weight=w, feature_names=feature_names)
    params = {k: v for k, v in params.items() if k != "nthread"}
    booster = xgb.dask.train(client, params, dtrain, num_boost_round=n_rounds)["booster"]
    booster.set_attr(scaler=scaler.to_json())
    return booster


def load_model(path: str | Path) -> tuple[xgb.Booster, Scaler]:
    """A model saved by ``gbdist learn`` and the standardisation its inputs need."""
    booster = xgb.Booster(model_file=str(path))
    return booster, Scaler.from_json(booster.attr("scaler"))


def train_models(client, store: str, reps: dict[str, tuple[np.ndarray, list[str]]], props: list[Property],
                 out: Path, eps: float | None, model: ModelParams | None = None, seed: int = 0,
                 storage_options: dict | None = None) -> list[dict]:
    """For each property × representation: choose settings by CV on all labelled GBs (a worker
    task), fit with xgboost.dask, save ``<property>_<rep>.ubj``; write and return ``models.json``."""
    model = model or ModelParams()
    out.mkdir(parents=True, exist_ok=True)
    group = open_group(store, storage_options=storage_options)
    records = []
    for prop in props:
        for rep, (X, names) in reps.items():
            log.info("learn: %s on %s (%d GBs)", prop.name, rep, len(prop.rows))
            scaler = Scaler.fit(X[prop.rows])
            choice = client.submit(choose_by_cv, scaler.transform(X[prop.rows]), prop.y, prop.kind,
                                   prop.n_classes, model, seed, pure=False).result()
            if choice.params.get("booster") == "gblinear":  # xgboost.dask trains trees only
                booster = client.submit(fit_choice, scaler.transform(X[prop.rows]), prop.y, prop.kind,
                                        model, choice, pure=False).result()
                booster.feature_names = names
                booster.set_attr(scaler=scaler.to_json())
            else:
                booster = fit_distributed(client, representation_array(store, rep, eps, storage_options, group),
                                          prop, choice.params, choice.n_rounds, model, names, scaler)
            path = out / f"{prop.name}_{rep}.ubj"
            booster.save_model(path)
            records.append({"property": prop.name, "representation": rep, "kind": prop.kind,
                            "classes": list(prop.classes), "model": path.name, "n_train": len(prop.rows),
                            "n_rounds": choice.n_rounds, "cv_metric": choice.cv_metric,
                            "cv_score": choice.cv_score, "candidates": choice.candidates,
                            "params": choice.params, "features": len(names),
                            "ler_eps": eps if rep == "LER" else None})
    (out / "models.json").write_text(json.dumps({"store": store, "ler_eps": eps, "seed": seed, "model": model.model_dump(),
                                                 "models": records}, indent=1))
    return records
