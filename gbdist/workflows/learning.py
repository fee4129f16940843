"""Learning on a store, end to end: Table I (``evaluate_store``), learning curves (``curve_store``),
final models (``train_store``) and building blocks (``explain_store``).

Each function reads the store's representations and the labels, starts (or joins) a Dask
client, runs the learning code and writes its outputs, which always name the LER eps used.
The option models hold every default and bound: the CLI takes its defaults from them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gbdist.errors import GbdistError
from gbdist.learning.features import missing_rows, read_feature_table
from gbdist.learning.labels import Property, align_labels, load_labels
from gbdist.learning.models import ModelParams
from gbdist.stages.client import ClusterConfig, dask_client
from gbdist.store.representations import area_problem, read_representations
from gbdist.store.schema import (
    GB_ID,
    UNIQUE_ATOM,
    UNIQUE_COUNT,
    UNIQUE_GB,
    UNIQUE_SOAP,
    chosen_eps,
    lae_group_name,
    lae_path,
    open_group,
    resolve_eps,
)

log = logging.getLogger(__name__)

Eps = Field(None, gt=0, lt=2, description="LER of the LAE run at this eps (default: the store's chosen eps)")
ClassWeight = Literal["none", "balanced"]


class EvaluateOptions(BaseModel):
    """Table I: ``splits`` random splits at ``train_fraction``; tune and fit on one part, score the other."""

    model_config = ConfigDict(extra="forbid")
    properties: list[str] | None = Field(None, description="property columns (default: all)")
    splits: int = Field(50, ge=2, description="random 50/50 splits")
    seed: int = Field(0, description="seed of the splits, CV folds and boosters")
    eps: float | None = Eps
    class_weight: ClassWeight = Field("none", description="classification: none or balanced (training rows only)")
    representations: list[str] | None = Field(None, description="built-in representations to score "
                                              "(ASR, ASR_area, LER; default: all in the store)")
    features: list[str] = Field(default_factory=list, description="feature tables (CSV / Parquet with an id "
                                "column, or a Zarr array with a gb dimension) scored beside them")


class CurveOptions(BaseModel):
    """Learning curve: held-out score against the training fraction, ``fits`` random splits each."""

    model_config = ConfigDict(extra="forbid")
    property: str = Field("energy", description="property column")
    fractions: list[float] = Field([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], min_length=1,
                                   description="training fractions, each in (0, 1)")
    fits: int = Field(25, ge=1, description="random splits (refits) per fraction")
    seed: int = Field(0, description="seed of the splits, CV folds and boosters")
    eps: float | None = Eps

    @field_validator("fractions")
    @classmethod
    def _inside_unit_interval(cls, fractions: list[float]) -> list[float]:
        bad = [f for f in fractions if not 0 < f < 1]
        if bad:
            raise ValueError(f"{bad} outside (0, 1): training fractions lie strictly between 0 and 1")
        return fractions


class LearnOptions(BaseModel):
    """Final models: settings chosen by CV on all labelled GBs, then xgboost.dask."""

    model_config = ConfigDict(extra="forbid")
    properties: list[str] | None = Field(None, description="property columns (default: all)")
    seed: int = Field(0, description="seed of the CV folds and boosters")
    eps: float | None = Eps
    class_weight: ClassWeight = Field("none", description="classification: none or balanced")
    representations: list[str] | None = Field(None, description="representations to train on "
                                              "(ASR, ASR_area, LER; default: all in the store)")


class ExplainOptions(BaseModel):
    """Building blocks: the ``top`` unique LAEs of an LER model for one property (or one class of it)."""

    model_config = ConfigDict(extra="forbid")
    property: str = Field(description="property column")
    klass: int | None = Field(None, description="explain this class against the rest")
    top: int = Field(10, ge=1, description="how many unique LAEs to show")
    eps: float | None = Eps
    seed: int = Field(0, description="seed of the CV folds and booster")


@dataclass
class LearningInputs:
    """What every learning workflow starts from: GB ids (n_gb,), representations
    {name: (X (n_gb, n_feat), feature names)}, the aligned properties and the LER eps (or None)."""

    gb_ids: np.ndarray
    reps: dict[str, tuple[np.ndarray, list[str]]]
    props: list[Property]
    eps: float | None

    def matrices(self) -> dict[str, np.ndarray]:
        return {name: X for name, (X, _) in self.reps.items()}


def learning_inputs(store: str, labels, properties: list[str] | None = None, eps: float | None = None,
                    representations: list[str] | None = None, features: list[str] = (),
                    storage_options: dict | None = None) -> LearningInputs:
    """Read the store's representations (the LER at ``eps`` or the chosen eps), the feature
    tables and the labels (a spec for :func:`~gbdist.learning.labels.load_labels`)."""
    group = open_group(store, storage_options=storage_options)
    reps = read_representations(group, eps, store)
    if representations is not None:
        unknown = [r for r in representations if r not in reps]
        if unknown:
            why = f"; {area_problem(group)}" if "ASR_area" in unknown and area_problem(group) else ""
            raise GbdistError(f"--representation: {', '.join(unknown)} not in {store} "
                              f"(has: {', '.join(reps) or 'none'}){why}")
        reps = {r: reps[r] for r in representations}
    gb_ids = group[GB_ID][:]
    props = align_labels(load_labels(labels), gb_ids, properties or None)
    for table in features:
        X, names = read_feature_table(table, gb_ids)
        for prop in props:
            lacking = missing_rows(X, prop.rows)
            if len(lacking):
                raise GbdistError(f"{table}: no row for {len(lacking)} labelled GB(s) of {prop.name}, e.g. "
                                  f"{', '.join(map(str, gb_ids[lacking[:5]]))}")
        name = Path(table).stem if Path(table).stem not in reps else f"{Path(table).stem} (table)"
        reps[name] = (X, names)
    if not reps:
        raise GbdistError(f"{store}: no ASR or LER yet; run `gbdist run` (or soap and lae) first")
    used_eps = resolve_eps(group, store, eps) if "LER" in reps else None
    return LearningInputs(gb_ids, reps, props, used_eps)


@dataclass
class Table1Result:
    """Table I as written to ``out``: {property: {representation: summary}}, per-cell results, run info."""

    out: Path
    table: dict
    cells: dict
    info: dict

    @property
    def markdown(self) -> str:
        return (self.out / "table1.md").read_text()


def evaluate_store(store: str, labels, out: str | Path, options: EvaluateOptions | None = None,
                   cluster: ClusterConfig | None = None, storage_options: dict | None = None) -> Table1Result:
    """The paper's Table I protocol on a store (and any feature tables); outputs in ``out``."""
    from gbdist.datasets.olmsted import PAPER_TABLE1
    from gbdist.learning.protocol import run_table1
    from gbdist.learning.reports import write_table1

    options = options or EvaluateOptions()
    t0 = time.perf_counter()
    inputs = learning_inputs(store, labels, options.properties, options.eps, options.representations,
                             options.features, storage_options)
    model = ModelParams(class_weight=options.class_weight)
    with dask_client(cluster or ClusterConfig()) as client:
        cells = run_table1(client, inputs.matrices(), inputs.props, options.splits, options.seed, model)
    info = {"store": store, "labels": _describe(labels), "splits": options.splits, "seed": options.seed,
            "ler_eps": inputs.eps, "representations": list(inputs.reps), "features": options.features,
            "model": model.model_dump(), "wall_s": time.perf_counter() - t0}
    out = Path(out)
    table = write_table1(out, cells, inputs.props, inputs.gb_ids, options.splits, info,
                         PAPER_TABLE1 if str(labels) == "olmsted" else None)
    return Table1Result(out, table, cells, info)


def curve_store(store: str, labels, out: str | Path, options: CurveOptions | None = None,
                cluster: ClusterConfig | None = None) -> tuple[list[dict], float | None]:
    """Learning curve of one property for every representation; ``curve_<property>.csv`` / ``.png``
    in ``out``. Returns the rows and the LER eps used."""
    from gbdist.learning.protocol import run_learning_curve
    from gbdist.learning.reports import write_learning_curve

    options = options or CurveOptions()
    inputs = learning_inputs(store, labels, [options.property], options.eps)
    with dask_client(cluster or ClusterConfig()) as client:
        rows = run_learning_curve(client, inputs.matrices(), inputs.props[0], options.fractions, options.fits,
                                  options.seed, ModelParams())
    rows = [r | {"ler_eps": inputs.eps if r["representation"] == "LER" else None} for r in rows]
    write_learning_curve(Path(out), rows, options.property)
    return rows, inputs.eps


def train_store(store: str, labels, out: str | Path, options: LearnOptions | None = None,
                cluster: ClusterConfig | None = None, storage_options: dict | None = None) -> list[dict]:
    """One final model per property × representation (xgboost.dask), saved with ``models.json`` in
    ``out``; with the store's unique LAEs, ``out`` is also a model bundle for ``gbdist predict``."""
    from gbdist.learning.final import train_models

    options = options or LearnOptions()
    inputs = learning_inputs(store, labels, options.properties, options.eps, options.representations,
                             storage_options=storage_options)
    out = Path(out)
    with dask_client(cluster or ClusterConfig()) as client:
        records = train_models(client, store, inputs.reps, inputs.props, out, inputs.eps,
                               ModelParams(class_weight=options.class_weight), options.seed, storage_options)
    group = open_group(store, storage_options=storage_options)
    if inputs.eps is None and chosen_eps(group) is None:
        log.warning("learn: %s has no unique LAEs, so %s is no model bundle for `gbdist predict`", store, out)
    else:  # the dictionary travels with the bundle even when no model uses the LER
        eps = inputs.eps if inputs.eps is not None else options.eps
        write_store_bundle(store, out, records, resolve_eps(group, store, eps), storage_options)
    return records


def write_store_bundle(store: str, out: Path, records: list[dict], eps: float,
                       storage_options: dict | None = None) -> Path:
    """Make ``out`` (holding the boosters of ``records``) a model bundle: the store's parameters,
    species, unique LAEs at ``eps`` and the in-domain threshold from its training GBs."""
    from gbdist.learning.bundle import in_domain_rule, store_content_id, training_novel_fractions, write_bundle

    group = open_group(store, storage_options=storage_options)
    log.info("learn: bundle with the unique LAEs at eps %.4f; leave-one-GB-out novelty of the training GBs", eps)
    fractions = training_novel_fractions(group, eps)
    inputs = list(group.attrs["inputs"])
    gb_ids = group[GB_ID][:]
    unique = {"unique_soap": group[lae_path(eps, UNIQUE_SOAP)][:],
              "unique_count": group[lae_path(eps, UNIQUE_COUNT)][:].astype(np.int64),
              "unique_atom": group[lae_path(eps, UNIQUE_ATOM)][:].astype(np.int64)}
    training = {"store": store, "store_id": store_content_id(inputs), "n_gb": int(len(gb_ids)),
                "inputs": [{"id": r["id"], "sha256": r["sha256"]} for r in inputs],
                "soap_backend": group.attrs.get("soap_backend", {"name": "dscribe", "version": "unrecorded"}),
                "seeds": group[lae_group_name(eps)].attrs.get("seeds", [{"lattice": "fcc", "host": None, "a": None}])}
    return write_bundle(out, records, training, dict(group.attrs["params"]), list(group.attrs["species"]), eps,
                        unique, [str(gb_ids[g]) for g in group[lae_path(eps, UNIQUE_GB)][:]], in_domain_rule(fractions))


@dataclass
class ExplainResult:
    """The top unique LAEs (one dict each, as in ``explain.json``), the eps they belong to, the report."""

    entries: list[dict]
    eps: float
    report: Path


def explain_store(store: str, labels, out: str | Path, options: ExplainOptions) -> ExplainResult:
    """Rank the unique LAEs for a property, trace the top ones to atoms, draw them; ``report.md`` in ``out``."""
    from gbdist.explain.report import explain

    group = open_group(store)
    (target,) = align_labels(load_labels(labels), group[GB_ID][:], [options.property])
    out = Path(out)
    entries, eps = explain(store, target, out, options.klass, options.top, options.eps, options.seed)
    return ExplainResult(entries, eps, out / "report.md")


def _describe(labels) -> str:
    if isinstance(labels, pd.DataFrame):
        return str(labels.attrs.get("source", "a labels frame"))
    return str(labels)
