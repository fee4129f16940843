"""A model bundle: everything ``gbdist predict`` needs, and nothing that needs the training store.

``gbdist learn --out DIR`` writes it beside the boosters:

- ``bundle.json``: format and versions, the training store (path, content id, input ids and
  sha256), the read / select / SOAP parameters and species, the eps and the definitions of
  the representations, the models (property, kind, classes, representation, file), the
  in-domain threshold and how it was chosen, and the sha256 of every file below;
- ``<property>_<representation>.ubj``: XGBoost boosters (UBJSON) with their standardisation
  in the ``scaler`` attribute;
- ``unique_soap.npy`` (n_u, n_feat) float32, ``unique_count.npy`` and ``unique_atom.npy``
  (n_u,) int64: the unique LAEs at the eps used, with ``unique_gb`` (their source GB ids) in
  ``bundle.json``.

Arrays are NumPy ``.npy`` files read with ``allow_pickle=False``; nothing is pickled. A bundle
is movable: copy the folder anywhere and delete the training store.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xgboost as xgb

from gbdist import __version__
from gbdist.errors import GbdistError
from gbdist.learning.models import Scaler
from gbdist.store.schema import GB_ID, LAE_GB, SCHEMA_VERSION, UNIQUE_GB, UNIQUE_SOAP

BUNDLE_FORMAT = "gbdist-model-bundle"
BUNDLE_VERSION = 1
ARRAYS = ("unique_soap", "unique_count", "unique_atom")
REPRESENTATIONS = {
    "ASR": "mean of a GB's unit SOAP rows (n_feat,)",
    "ASR_area": "ASR × t, t = boundary extent + 2 × pad (Å): the selected slab's thickness",
    "LER": "fraction of a GB's LAEs whose most similar unique LAE (of this bundle) is each one (n_u,)",
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def store_content_id(inputs: list[dict]) -> str:
    """A store's content id: sha256 over its sorted (structure id, file sha256) pairs."""
    pairs = sorted((r["id"], r["sha256"]) for r in inputs)
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()


@dataclass
class Bundle:
    """A loaded bundle: its folder, ``bundle.json`` and the unique LAEs."""

    path: Path
    meta: dict
    unique_soap: np.ndarray
    unique_count: np.ndarray
    unique_atom: np.ndarray

    @property
    def eps(self) -> float:
        return float(self.meta["eps"])

    @property
    def species(self) -> list[str]:
        return list(self.meta["species"])

    @property
    def params(self) -> dict:
        return dict(self.meta["params"])

    @property
    def in_domain_threshold(self) -> float:
        return float(self.meta["in_domain"]["threshold"])

    def models(self):
        """(record, booster, scaler) for every model of the bundle."""
        for record in self.meta["models"]:
            booster = xgb.Booster(model_file=str(self.path / record["model"]))
            yield record, booster, Scaler.from_json(booster.attr("scaler"))


def write_bundle(out: Path, records: list[dict], training: dict, params: dict, species: list[str], eps: float,
                 unique: dict[str, np.ndarray], unique_gb: list[str], in_domain: dict) -> Path:
    """Write ``bundle.json`` and the unique-LAE arrays into ``out`` (which holds the boosters of
    ``records``); returns the path of ``bundle.json``. Written last, so a folder without it is
    not a bundle."""
    out = Path(out)
    for name in ARRAYS:
        np.save(out / f"{name}.npy", unique[name], allow_pickle=False)
    files = [f"{name}.npy" for name in ARRAYS] + [r["model"] for r in records]
    meta = {"format": BUNDLE_FORMAT, "bundle_version": BUNDLE_VERSION, "gbdist_version": __version__,
            "schema_version": SCHEMA_VERSION, "training": training, "params": params, "species": species,
            "eps": eps, "representations": {r: REPRESENTATIONS[r] for r in sorted({m["representation"] for m in records})},
            "unique_gb": unique_gb, "in_domain": in_domain,
            "models": [{k: v for k, v in r.items() if k != "candidates"} for r in records],
            "files": {f: _sha256(out / f) for f in files}}
    path = out / "bundle.json"
    path.write_text(json.dumps(meta, indent=1))
    return path


def load_bundle(path: str | Path) -> Bundle:
    """Read and check a bundle folder.

    Raises
    ------
    GbdistError
        Naming the folder and the problem: not a bundle, another format or version, a file
        missing or changed since it was written (truncated, edited).
    """
    path = Path(path)
    meta_path = path / "bundle.json"
    if not path.is_dir():
        raise GbdistError(f"{path}: not a folder; a model bundle is the folder `gbdist learn --out` wrote")
    if not meta_path.is_file():
        raise GbdistError(f"{path}: not a model bundle (no bundle.json; `gbdist learn --out {path}` writes one)")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise GbdistError(f"{meta_path}: unreadable bundle description ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise GbdistError(f"{meta_path}: not a gbdist model bundle")
    if meta.get("bundle_version") != BUNDLE_VERSION or meta.get("schema_version") != SCHEMA_VERSION:
        raise GbdistError(f"{path}: bundle version {meta.get('bundle_version')} / store schema "
                          f"{meta.get('schema_version')} (written by gbdist {meta.get('gbdist_version')}); this gbdist "
                          f"{__version__} reads bundle version {BUNDLE_VERSION} / schema {SCHEMA_VERSION}. Rerun `gbdist learn`.")
    for name, digest in meta.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise GbdistError(f"{path}: bundle file {name} is missing")
        if _sha256(file) != digest:
            raise GbdistError(f"{path}: bundle file {name} differs from when it was written (truncated or changed)")
    arrays = {name: np.load(path / f"{name}.npy", allow_pickle=False) for name in ARRAYS}
    return Bundle(path, meta, arrays["unique_soap"], arrays["unique_count"], arrays["unique_atom"])


def training_novel_fractions(group, eps: float) -> np.ndarray:
    """Leave-one-GB-out novelty of the training GBs, (n_gb,): the fraction of each GB's rows
    that would be novel had that GB been left out of the dictionary, i.e. rows labelled with a
    unique LAE found in the same GB (the seeds aside) and farther than eps from every
    unique LAE found elsewhere. Reads only those rows, one GB at a time."""
    from gbdist.compute.leaders import similarity_threshold
    from gbdist.store.schema import lae_group_name, lae_path

    labels, lae_gb = group[lae_path(eps, "label")][:], group[LAE_GB][:]
    unique_gb, leaders = group[lae_path(eps, UNIQUE_GB)][:], group[lae_path(eps, UNIQUE_SOAP)][:]
    n_seeds = len(group[lae_group_name(eps)].attrs.get("seeds", [None]))  # a store before structure types: 1
    own = np.flatnonzero((unique_gb[labels] == lae_gb) & (labels >= n_seeds))
    novel = np.zeros(len(labels), bool)
    for gb in np.unique(lae_gb[own]):
        rows = own[lae_gb[own] == gb]
        others = np.flatnonzero((unique_gb != gb) | (np.arange(len(leaders)) < n_seeds))
        vectors = group["soap"].get_orthogonal_selection((rows, slice(None)))
        novel[rows] = (vectors @ leaders[others].T).max(axis=1) < similarity_threshold(eps)
    n_gb = group[GB_ID].shape[0]
    return np.bincount(lae_gb[novel], minlength=n_gb) / np.bincount(lae_gb, minlength=n_gb)


def in_domain_rule(fractions: np.ndarray, quantile: float = 0.95) -> dict:
    """The in-domain threshold from the training GBs' leave-one-GB-out novel fractions: their
    ``quantile`` (a new GB is in domain when it is no more novel than 95% of the training GBs are
    when left out of the dictionary)."""
    summary = {"min": float(fractions.min()), "median": float(np.median(fractions)),
               "p95": float(np.quantile(fractions, 0.95)), "max": float(fractions.max())}
    return {"threshold": float(np.quantile(fractions, quantile)), "quantile": quantile,
            "rule": f"in_domain: novel fraction ≤ the {quantile:.0%} quantile of the training GBs' "
                    "leave-one-GB-out novel fractions",
            "training_novel_fraction": summary}


def apply_models(bundle: Bundle, reps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every model of the bundle on the representations {name: (n, n_feat)}: columns of predictions.

    Regression: ``<property>_<rep>`` (the value). Classification: ``<property>_<rep>`` (the class
    value) and ``<property>_<rep>_p<class>`` (its probability) for each class. A model whose
    representation is not in ``reps`` (ASR_area of structures with no boundary area) is left out.
    """
    columns = {}
    for record, booster, scaler in bundle.models():
        if record["representation"] not in reps:
            continue
        X = reps[record["representation"]]
        dmatrix = xgb.DMatrix(scaler.transform(X), feature_names=booster.feature_names)
        raw = booster.predict(dmatrix)
        name = f"{record['property']}_{record['representation']}"
        if record["kind"] == "regression":
            columns[name] = raw.astype(np.float64)
            continue
        classes = np.asarray(record["classes"])
        probabilities = np.column_stack([1 - raw, raw]) if raw.ndim == 1 else raw
        columns[name] = classes[probabilities.argmax(axis=1)]
        for k, c in enumerate(classes):
            columns[f"{name}_p{c}"] = probabilities[:, k].astype(np.float64)
    return columns
