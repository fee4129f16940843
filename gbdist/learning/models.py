"""Models and scores for GB properties: XGBoost tuned by cross-validation inside the training rows.

Plain functions of numpy arrays (one fit per call, single-threaded), so the Table I protocol
can spread thousands of independent fits over Dask workers and tests can call them directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import xgboost as xgb
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import balanced_accuracy_score
from sklearn.utils.class_weight import compute_sample_weight


class ModelParams(BaseModel):
    """XGBoost settings shared by every fit, and the grid that CV chooses from.

    ``grid``: candidate overrides of the booster parameters (trees of two depths); ``linear``:
    one more candidate for regression targets only, a linear booster, which suits extensive
    targets such as the GB energy (a sum of per-atom terms). For each candidate the number of
    rounds comes from early stopping in ``cv_folds``-fold CV on the training rows. ``class_weight``
    ``balanced`` weights each training row by n / (K · n_class) (classification only).
    """

    model_config = ConfigDict(extra="forbid")
    eta: float = Field(0.1, gt=0)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.3, gt=0, le=1)
    max_bin: int = Field(32, ge=2)
    max_rounds: int = Field(600, ge=1)
    early_stopping: int = Field(40, ge=1)
    cv_folds: int = Field(3, ge=2)
    grid: list[dict] = [{"booster": "gbtree", "max_depth": 2, "min_child_weight": 3},
                        {"booster": "gbtree", "max_depth": 5, "min_child_weight": 1}]
    linear: dict | None = {"booster": "gblinear", "eta": 1.0, "reg_lambda": 0.1, "updater": "coord_descent"}
    class_weight: str = Field("none", pattern="^(balanced|none)$")


@dataclass
class Scaler:
    """Per-feature standardisation fitted on training rows: (X − mean) / scale; shapes (n_feat,)."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray) -> Scaler:
        scale = X.std(axis=0)
        return cls(X.mean(axis=0), np.where(scale > 0, scale, 1.0))

    def transform(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.scale).astype(np.float32)

    def to_json(self) -> str:
        return json.dumps({"mean": self.mean.tolist(), "scale": self.scale.tolist()})

    @classmethod
    def from_json(cls, text: str) -> Scaler:
        data = json.loads(text)
        return cls(np.asarray(data["mean"]), np.asarray(data["scale"]))


TREE_ONLY = ("tree_method", "subsample", "colsample_bytree", "max_bin")


def booster_params(kind: str, n_classes: int, model: ModelParams, seed: int, nthread: int = 1) -> dict:
    """Base booster parameters for a regression or (binary / multi-class) classification fit."""
    params = {"tree_method": "hist", "eta": model.eta, "subsample": model.subsample,
              "colsample_bytree": model.colsample_bytree, "max_bin": model.max_bin,
              "seed": seed, "nthread": nthread}
    if kind == "regression":
        params |= {"objective": "reg:squarederror", "eval_metric": "rmse"}
    elif n_classes <= 2:
        params |= {"objective": "binary:logistic", "eval_metric": "logloss"}
    else:
        params |= {"objective": "multi:softprob", "eval_metric": "mlogloss", "num_class": n_classes}
    return params


def training_weights(y: np.ndarray, kind: str, model: ModelParams) -> np.ndarray | None:
    """Per-row weights for the training rows only (balanced classes), or None."""
    if kind == "classification" and model.class_weight == "balanced":
        return compute_sample_weight("balanced", y)
    return None


@dataclass
class Choice:
    """The grid candidate CV chose: full booster parameters, rounds, and every candidate's CV score."""

    params: dict
    n_rounds: int
    cv_metric: str
    cv_score: float
    candidates: list = field(default_factory=list)


def _can_stratify(y: np.ndarray, kind: str, folds: int) -> bool:
    """Stratified folds need every class present in y at least ``folds`` times."""
    if kind != "classification":
        return False
    counts = np.bincount(y.astype(np.int64))
    return bool(counts[counts > 0].min() >= folds)


def choose_by_cv(X: np.ndarray, y: np.ndarray, kind: str, n_classes: int, model: ModelParams,
                 seed: int, nthread: int = 1) -> Choice:
    """Pick the grid candidate (and its rounds, by early stopping) with the best CV score on (X, y).

    X (m, n_feat), y (m,): the training rows and nothing else.
    """
    base = booster_params(kind, n_classes, model, seed, nthread)
    dtrain = xgb.DMatrix(X, label=y, weight=training_weights(y, kind, model))
    candidates = []
    grid = model.grid + ([model.linear] if kind == "regression" and model.linear else [])
    keys = sorted({k for overrides in grid for k in overrides})
    for overrides in grid:
        params = base | overrides
        if params.get("booster") == "gblinear":
            params = {k: v for k, v in params.items() if k not in TREE_ONLY}
        history = xgb.cv(params, dtrain, num_boost_round=model.max_rounds, nfold=model.cv_folds,
                         stratified=_can_stratify(y, kind, model.cv_folds), early_stopping_rounds=model.early_stopping,
                         seed=seed, shuffle=True)
        candidates.append((float(history[f"test-{base['eval_metric']}-mean"].iloc[-1]), len(history), params))
    cv_score, n_rounds, params = min(candidates, key=lambda c: c[0])
    return Choice(params, n_rounds, base["eval_metric"], cv_score,
                  [{"cv_score": s, "n_rounds": n} | {k: p[k] for k in keys if k in p} for s, n, p in candidates])


def tune_and_fit(X: np.ndarray, y: np.ndarray, kind: str, n_classes: int, model: ModelParams,
                 seed: int, nthread: int = 1) -> tuple[xgb.Booster, Choice, Scaler]:
    """Standardise, choose by CV and refit, all on (X, y): the training rows only.

    Returns the booster, the choice, and the scaler that test rows must go through. The
    scaler is also stored in the booster (attribute ``scaler``), so a saved model carries it.
    """
    scaler = Scaler.fit(X)
    Z = scaler.transform(X)
    choice = choose_by_cv(Z, y, kind, n_classes, model, seed, nthread)
    booster = fit_choice(Z, y, kind, model, choice)
    booster.set_attr(scaler=scaler.to_json())
    return booster, choice, scaler


def fit_choice(Z: np.ndarray, y: np.ndarray, kind: str, model: ModelParams, choice: Choice) -> xgb.Booster:
    """Fit the chosen candidate on standardised training rows Z (m, n_feat), y (m,)."""
    dtrain = xgb.DMatrix(Z, label=y, weight=training_weights(y, kind, model))
    return xgb.train(choice.params, dtrain, num_boost_round=choice.n_rounds)


def cut_at_best(booster: xgb.Booster) -> xgb.Booster:
    """``booster`` without the rounds after its best one (early stopping keeps them all)."""
    best = booster.best_iteration if booster.attr("best_iteration") is not None else booster.num_boosted_rounds() - 1
    return booster[: best + 1]


def predict(booster: xgb.Booster, X: np.ndarray, kind: str) -> np.ndarray:
    """Predicted values (regression) or class codes (classification) for X (m, n_feat)."""
    raw = booster.predict(xgb.DMatrix(X))
    if kind == "regression":
        return raw.astype(np.float64)
    if raw.ndim == 1:
        return (raw > 0.5).astype(np.int32)
    return raw.argmax(axis=1).astype(np.int32)


def energy_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The paper's regression "accuracy": 100 · (1 − RMSE / mean(y_true)), %."""
    rmse = float(np.sqrt(np.mean((np.asarray(y_true) - np.asarray(y_pred)) ** 2)))
    return 100.0 * (1.0 - rmse / float(np.mean(y_true)))


def scores(y_true: np.ndarray, y_pred: np.ndarray, kind: str) -> dict:
    """Headline ``score`` (energy score or accuracy, %) and secondary figures."""
    if kind == "regression":
        err = np.asarray(y_pred) - np.asarray(y_true)
        return {"score": energy_score(y_true, y_pred), "rmse": float(np.sqrt(np.mean(err ** 2))),
                "mae": float(np.mean(np.abs(err)))}
    return {"score": 100.0 * float(np.mean(y_pred == y_true)),
            "balanced_accuracy": 100.0 * float(balanced_accuracy_score(y_true, y_pred))}


def random_prediction(y_train: np.ndarray, n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """The paper's random baseline for n held-out GBs.

    Regression: draws from a normal with the training mean and standard deviation.
    Classification: labels drawn (with replacement) from the training labels.
    """
    if kind == "regression":
        return rng.normal(np.mean(y_train), np.std(y_train), n)
    return rng.choice(np.asarray(y_train), n, replace=True)


def random_halves(n: int, n_splits: int, seed: int, train_fraction: float = 0.5) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_splits`` random (train, test) partitions of range(n); train holds round(f·n) rows."""
    n_train = int(round(train_fraction * n))
    if not 1 < n_train < n - 1:
        raise ValueError(f"training fraction {train_fraction} of {n} rows leaves too few rows on one side")
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(n_splits):
        perm = rng.permutation(n)
        splits.append((np.sort(perm[:n_train]), np.sort(perm[n_train:])))
    return splits


def evaluate_split(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, kind: str,
                   n_classes: int, model: ModelParams, seed: int) -> dict:
    """Tune and fit on the ``train`` rows only, score on the ``test`` rows.

    Returns scores plus the held-out predictions and the chosen candidate.
    """
    booster, choice, scaler = tune_and_fit(X[train], y[train], kind, n_classes, model, seed)
    y_pred = predict(booster, scaler.transform(X[test]), kind)
    chosen = {k: v for k, v in choice.params.items() if any(k in g for g in [*model.grid, model.linear or {}])}
    return scores(y[test], y_pred, kind) | {"pred": y_pred, "n_rounds": choice.n_rounds, "chosen": chosen}
