"""Ranking the unique LAEs an LER model relies on (gain, SHAP), and cutting the atoms around one out of its GB.

For a property (and optionally one class of it, as one-vs-rest), an XGBoost model on the
LER ranks the unique LAEs by gain and by mean |SHAP| (XGBoost ``pred_contribs``). Each top
LAE is traced to the GB and atom it was found at; the atoms within r_cut of that centre are
cut out with their CNA class and written as an extxyz cluster and a picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xgboost as xgb
from ase import Atoms
from ase.geometry import find_mic
from ase.neighborlist import neighbor_list

from gbdist.compute.crystal import FCC, HCP
from gbdist.learning.labels import Property
from gbdist.learning.models import ModelParams, tune_and_fit
from gbdist.structure import Structure


@dataclass
class Ranking:
    """Unique-LAE indices by importance, with gain and mean |SHAP| per unique LAE (n_u,)."""

    order: np.ndarray
    gain: np.ndarray
    mean_abs_shap: np.ndarray
    mean_shap_in_class: np.ndarray  # signed mean SHAP over the GBs of the class (or all GBs)
    target: str


def one_vs_rest(prop: Property, klass: int | None) -> Property:
    """The property itself, or the binary target "is class ``klass``" of a classification property."""
    if klass is None:
        return prop
    if prop.kind != "classification" or klass not in prop.classes:
        raise ValueError(f"{prop.name}: no class {klass} (classes: {prop.classes})")
    code = prop.classes.index(klass)
    return Property(f"{prop.name}={klass}", "classification", prop.rows, (prop.y == code).astype(np.int32), (0, 1))


def tree_model() -> ModelParams:
    """The default settings without the linear candidate: gain is defined for trees only."""
    base = ModelParams()
    return base.model_copy(update={"linear": None})


def rank_laes(ler: np.ndarray, prop: Property, model: ModelParams | None = None, seed: int = 0,
              nthread: int = 0) -> Ranking:
    """Fit an LER model (settings chosen by CV) on all labelled GBs and rank its features.

    ler (n_gb, n_u); ``prop`` gives the labelled rows. For a multi-class property the SHAP
    values are those of the model's output for each GB's own class, averaged in magnitude.
    """
    model = model or tree_model()
    X = ler[prop.rows]
    booster, _, scaler = tune_and_fit(X, prop.y, prop.kind, prop.n_classes, model, seed, nthread)
    n_u = ler.shape[1]
    gain = np.zeros(n_u)
    for name, value in booster.get_score(importance_type="gain").items():
        gain[int(name[1:])] = value  # xgboost names unnamed features f0, f1, …
    contribs = booster.predict(xgb.DMatrix(scaler.transform(X)), pred_contribs=True)
    if contribs.ndim == 3:  # multi-class: (n, K, n_u + 1); take each GB's own class
        contribs = contribs[np.arange(len(X)), prop.y]
    contribs = contribs[:, :n_u]
    positive = prop.y == 1 if prop.n_classes == 2 else np.ones(len(X), bool)
    mean_abs = np.abs(contribs).mean(axis=0)
    order = np.lexsort((-mean_abs, -gain))  # by gain, ties by |SHAP|
    return Ranking(order, gain, mean_abs, contribs[positive].mean(axis=0), prop.name)


def cluster_around(structure: Structure, atom_id: int, r_cut: float, cna: np.ndarray) -> Atoms:
    """The atoms within ``r_cut`` Å of atom ``atom_id`` (itself first), centred on it.

    Positions are minimum-image vectors from the centre (Å); ``arrays["cna"]`` holds each
    atom's CNA class and ``arrays["atom_id"]`` its id in the source file.
    """
    index = np.flatnonzero(structure.ids == atom_id)
    if len(index) != 1:
        raise ValueError(f"{structure.source}: atom id {atom_id} not found")
    atoms = structure.to_ase()
    # only atoms with some periodic image within r_cut can be neighbours: search among those
    _, distance = find_mic(atoms.positions - atoms.positions[index[0]], atoms.cell, atoms.pbc)
    near = np.flatnonzero(distance < r_cut)
    i, j, D = neighbor_list("ijD", atoms[near], r_cut)
    mine = i == int(np.flatnonzero(near == index[0])[0])
    members = np.concatenate([index, near[j[mine]]])
    vectors = np.vstack([np.zeros(3), D[mine]])
    cluster = Atoms(numbers=structure.numbers[members], positions=vectors, pbc=False)
    cluster.arrays["cna"] = np.asarray(cna[members], dtype=np.int64)
    cluster.arrays["atom_id"] = np.asarray(structure.ids[members], dtype=np.int64)
    return cluster


def hcp_fraction(cluster: Atoms) -> float:
    """Share of a cluster's atoms (centre included) that CNA calls hcp: stacking faults, partials."""
    return float(np.mean(cluster.arrays["cna"] == HCP))


def fcc_fraction(cluster: Atoms) -> float:
    """Share of a cluster's atoms that CNA calls fcc."""
    return float(np.mean(cluster.arrays["cna"] == FCC))


def class_fractions(ler: np.ndarray, prop: Property, k: int) -> dict:
    """Mean LER fraction of unique LAE k over the GBs of each class (or all GBs for regression)."""
    column = ler[prop.rows, k]
    if prop.kind != "classification":
        return {"all": float(column.mean())}
    return {str(c): float(column[prop.y == code].mean()) if np.any(prop.y == code) else float("nan")
            for code, c in enumerate(prop.classes)}
