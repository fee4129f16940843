"""Experiment: other classifiers than XGBoost on the same representations and splits.

    .venv/bin/python notebooks/experiments/classifiers.py --store out/olmsted.zarr --splits 10

For mobility trend and shear coupling, on the store's ASR and LER: scikit-learn's logistic
regression, RBF SVM, k-nearest neighbours (each tuned by 3-fold grid search inside the
training half), random forest and extra trees. The splits are gbdist's ``random_halves``
(seed 0), the ones ``gbdist evaluate`` uses, so the first rows of its Table I compare directly.
Prints accuracy mean ± std per cell.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from gbdist.learning.labels import align_labels, load_labels
from gbdist.learning.models import random_halves
from gbdist.store.representations import read_representations
from gbdist.store.schema import open_group


def classifiers(seed: int) -> dict:
    """Name → unfitted scikit-learn estimator (tuning inside ``fit``, on the rows it is given)."""
    def tuned(estimator, grid):
        return GridSearchCV(make_pipeline(StandardScaler(), estimator), grid, cv=3)

    return {
        "logistic": tuned(LogisticRegression(max_iter=2000), {"logisticregression__C": [1e-3, 1e-2, 1e-1, 1]}),
        "svm-rbf": tuned(SVC(), {"svc__C": [1, 10, 100], "svc__gamma": ["scale", 1e-4, 1e-3]}),
        "knn": tuned(KNeighborsClassifier(), {"kneighborsclassifier__n_neighbors": [1, 3, 5, 9]}),
        "random-forest": RandomForestClassifier(500, random_state=seed),
        "extra-trees": ExtraTreesClassifier(500, random_state=seed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--labels", default="olmsted")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--property", action="append", help="class columns (default: mobility_trend, shear_coupling)")
    args = parser.parse_args()
    group = open_group(args.store, mode="r")
    reps = read_representations(group)
    props = align_labels(load_labels(args.labels), group["gb/id"][:], args.property or ["mobility_trend", "shear_coupling"])
    for prop in props:
        splits = random_halves(len(prop.y), args.splits, args.seed)
        for rep in ("ASR", "LER"):
            X = reps[rep][0][prop.rows]
            for name, model in classifiers(args.seed).items():
                acc = [100 * np.mean(model.fit(X[tr], prop.y[tr]).predict(X[te]) == prop.y[te]) for tr, te in splits]
                print(f"{prop.name:15s} {rep:4s} {name:14s} {np.mean(acc):5.1f} ± {np.std(acc):.1f}", flush=True)


if __name__ == "__main__":
    main()
