"""The paper's evaluation protocol (Table I) and learning curves, spread over Dask workers.

Every (property, representation, split) is one independent task: tune by CV and fit on the
split's training rows, score on its held-out rows. The same splits serve every
representation and the random baseline, so their scores are paired.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

import numpy as np

from gbdist.learning.labels import Property
from gbdist.learning.models import ModelParams, evaluate_split, random_halves, random_prediction, scores
from gbdist.stages.progress import as_completed_with_progress

log = logging.getLogger(__name__)


@dataclass
class CellResult:
    """Scores of one (property, representation) cell over its splits, plus held-out predictions."""

    scores: list[float] = field(default_factory=list)
    secondary: dict[str, list[float]] = field(default_factory=dict)
    predictions: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)  # (split, rows, pred)
    chosen: list[dict] = field(default_factory=list)

    def add(self, split: int, rows: np.ndarray, result: dict) -> None:
        self.scores.append(result["score"])
        for key, value in result.items():
            if key not in ("score", "pred", "chosen", "n_rounds"):
                self.secondary.setdefault(key, []).append(value)
        self.predictions.append((split, rows, result["pred"]))
        if "chosen" in result:
            self.chosen.append(result["chosen"] | {"n_rounds": result["n_rounds"]})

    def summary(self) -> dict:
        out = {"mean": float(np.mean(self.scores)), "std": float(np.std(self.scores)),
               "scores": [float(s) for s in self.scores]}
        for key, values in self.secondary.items():
            out[key] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
        return out


def _submit_fits(client, reps: dict[str, np.ndarray], prop: Property, splits, model: ModelParams, seed: int):
    """One task per (representation, split); returns {future: (rep, split index)}."""
    futures = {}
    for rep, X in reps.items():
        X_prop = client.scatter(np.ascontiguousarray(X[prop.rows]), broadcast=True)
        for i, (train, test) in enumerate(splits):
            future = client.submit(evaluate_split, X_prop, prop.y, train, test, prop.kind, prop.n_classes,
                                   model, seed + i, pure=False, key=f"fit-{prop.name}-{rep}-{i}-{uuid.uuid4().hex}")
            futures[future] = (rep, i)
    return futures


def run_table1(client, reps: dict[str, np.ndarray], props: list[Property], n_splits: int = 50,
               seed: int = 0, model: ModelParams | None = None,
               train_fraction: float = 0.5) -> dict[str, dict[str, CellResult]]:
    """Scores for every property × (each representation and "random") over ``n_splits`` splits.

    reps: {"ASR": (n_gb, n_feat), "LER": …}; properties carry their GB rows and values.
    """
    model = model or ModelParams()
    results: dict[str, dict[str, CellResult]] = {}
    futures = {}
    for prop in props:
        splits = random_halves(len(prop.y), n_splits, seed, train_fraction)
        results[prop.name] = {rep: CellResult() for rep in (*reps, "random")}
        rng = np.random.default_rng(seed)
        for i, (train, test) in enumerate(splits):  # the paper's random baseline: cheap, done here
            guess = random_prediction(prop.y[train], len(test), prop.kind, rng)
            results[prop.name]["random"].add(i, prop.rows[test], scores(prop.y[test], guess, prop.kind) | {"pred": guess})
        for future, (rep, i) in _submit_fits(client, reps, prop, splits, model, seed).items():
            futures[future] = (prop, rep, i, splits[i][1])
    for future in as_completed_with_progress(list(futures), "table I fits"):
        prop, rep, i, test = futures[future]
        results[prop.name][rep].add(i, prop.rows[test], future.result())
    for cells in results.values():  # splits finish in any order; keep split order
        for cell in cells.values():
            order = np.argsort([p[0] for p in cell.predictions], kind="stable")
            cell.scores = [cell.scores[k] for k in order]
            cell.secondary = {key: [v[k] for k in order] for key, v in cell.secondary.items()}
            cell.predictions = [cell.predictions[k] for k in order]
            cell.chosen = [cell.chosen[k] for k in order] if cell.chosen else []
    return results


def run_learning_curve(client, reps: dict[str, np.ndarray], prop: Property, fractions: list[float],
                       n_fits: int = 25, seed: int = 0, model: ModelParams | None = None) -> list[dict]:
    """Score vs training fraction (the rest is held out): one row per (representation, fraction)."""
    model = model or ModelParams()
    futures = {}
    for fraction in fractions:
        splits = random_halves(len(prop.y), n_fits, seed, fraction)
        for future, (rep, _split) in _submit_fits(client, reps, prop, splits, model, seed).items():
            futures[future] = (rep, fraction)
    collected: dict[tuple[str, float], list[float]] = {}
    balanced: dict[tuple[str, float], list[float]] = {}
    for future in as_completed_with_progress(list(futures), f"learning curve ({prop.name})"):
        result = future.result()
        collected.setdefault(futures[future], []).append(result["score"])
        if "balanced_accuracy" in result:
            balanced.setdefault(futures[future], []).append(result["balanced_accuracy"])
    n = len(prop.y)
    rows = []
    for key, s in sorted(collected.items()):
        rep, fraction = key
        row = {"representation": rep, "fraction": fraction, "n_train": int(round(fraction * n)),
               "mean": float(np.mean(s)), "std": float(np.std(s)), "n_fits": len(s)}
        if key in balanced:  # classification: balanced accuracy beside accuracy
            row |= {"balanced_mean": float(np.mean(balanced[key])), "balanced_std": float(np.std(balanced[key]))}
        rows.append(row)
    return rows
