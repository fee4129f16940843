"""Predict new boundaries with a model bundle, end to end (``gbdist predict``).

1. The structures go through select → SOAP with the **bundle's** parameters and species into a
   normal gbdist store (restart, failures, lock and remote stores as for any store), then the ASR.
2. Every row is assigned to its most similar unique LAE of the bundle (exact, on the workers);
   rows farther than eps from all of them are *novel*. A GB's LER uses the nearest assignment
   (the models' columns are unchanged); its novel fraction is reported beside it and decides
   ``in_domain`` against the bundle's threshold.
3. Novel rows are clustered by the same greedy rule into new candidate LAEs, each traced to a
   (GB, atom), counted and written as an extxyz cluster.
4. Every model of the bundle is applied (``predictions.csv``); with labels, scored as
   ``evaluate`` scores; with ``annotate``, one extxyz per GB with per-atom LAE ids for OVITO.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import ase.io
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from gbdist.compute.leaders import ler_matrix
from gbdist.errors import GbdistError, StoreError
from gbdist.explain.ranking import cluster_around
from gbdist.io import expand_inputs
from gbdist.io.inputs import describe_inputs
from gbdist.learning.bundle import Bundle, apply_models, load_bundle
from gbdist.learning.labels import align_labels, load_labels
from gbdist.learning.models import scores
from gbdist.learning.plots import confusion_plot, parity_plot
from gbdist.stages.asr import run_asr_stage
from gbdist.stages.client import ClusterConfig, dask_client
from gbdist.stages.lae import Assignment, assign_to_dictionary
from gbdist.stages.soap import SoapStageParams, normalised_params, run_soap_stage
from gbdist.stages.watchdog import TaskFailed
from gbdist.store.lock import store_lock
from gbdist.store.representations import area_problem, region_thickness
from gbdist.store.schema import ASSIGNED_GROUP, GB_ID, GB_OFFSET, LAE_ATOM, LAE_CNA, LAE_GB, open_group, stage_done
from gbdist.store.structures import SITE, gb_structure, layout_of, read_structure

log = logging.getLogger(__name__)


class PredictOptions(BaseModel):
    """What ``gbdist predict`` writes besides ``predictions.csv``."""

    model_config = ConfigDict(extra="forbid")
    labels: str | None = Field(None, description="labels to score the predictions against (as for evaluate)")
    annotate: bool = Field(False, description="write one extxyz per GB with per-atom lae, similarity, novel, cna")


@dataclass
class PredictResult:
    """Predictions (one row per GB), new candidate LAEs, scores against labels, failures."""

    out: Path
    store: str
    predictions: pd.DataFrame
    candidates: pd.DataFrame
    scores: dict = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    wall_s: float = 0.0


def check_store_for_bundle(group, store: str, bundle: Bundle) -> None:
    """Refuse a store computed with other parameters or species than the bundle's."""
    if not stage_done(group, "soap"):
        raise StoreError(f"{store}: the soap stage is not complete")
    if normalised_params(group.attrs.get("params", {})) != normalised_params(bundle.params):
        raise StoreError(f"{store}: computed with other read/select/SOAP parameters than the bundle {bundle.path}")
    if list(group.attrs.get("species", [])) != bundle.species:
        raise StoreError(f"{store}: species {list(group.attrs.get('species', []))} differ from the bundle's "
                         f"{bundle.species} ({bundle.path})")


def _compute_store(client, store: str, inputs: list[str], bundle: Bundle, storage_options,
                   task_memory: int | None = None) -> list[dict]:
    """select → SOAP → ASR of ``inputs`` with the bundle's parameters and species; returns the failures."""
    records = describe_inputs(expand_inputs(inputs))
    report = run_soap_stage(client, store, records, SoapStageParams(**bundle.params), storage_options,
                            species=bundle.species, task_memory=task_memory)
    group = open_group(store, storage_options=storage_options)
    if not stage_done(group, "soap"):
        raise TaskFailed(f"{store}: SOAP incomplete after {len(report.failures)} failure(s): "
                          + "; ".join(f["error"] for f in report.failures[:5]))
    run_asr_stage(client, store, storage_options)
    return report.failures


def _check_backend(bundle: Bundle) -> None:
    """The bundle's SOAP code must be installed (a clear error if not) and write its rows in the same
    layout; another version of it is allowed, with a warning, since its vectors may differ slightly
    from the training ones."""
    from gbdist.compute.soap import backend_version, old_featomic_rows

    here = backend_version(SoapStageParams(**bundle.params).soap)
    trained = bundle.meta.get("training", {}).get("soap_backend")
    problem = old_featomic_rows(trained)
    if problem:
        raise GbdistError(f"{bundle.path}: trained on {problem}: retrain the bundle with this version")
    if trained and trained.get("version") not in (here["version"], "unrecorded"):
        log.warning("bundle %s: trained with %s %s, this run uses %s %s", bundle.path, trained["name"],
                    trained["version"], here["name"], here["version"])


def predict_structures(bundle_path: str | Path, inputs: list[str] | None, out: str | Path,
                       options: PredictOptions | None = None, cluster: ClusterConfig | None = None,
                       store: str | None = None, storage_options: dict | None = None) -> PredictResult:
    """Predict every model of the bundle for the structures ``inputs`` (or a computed ``store``)."""
    t0 = time.perf_counter()
    options = options or PredictOptions()
    bundle = load_bundle(bundle_path)
    _check_backend(bundle)
    if (not inputs) == (store is None):
        raise GbdistError("give structure files (INPUT...) or --store, not both and not neither")
    out = Path(out)
    labels = load_labels(options.labels) if options.labels else None
    store = store or str(out / "structures.zarr")
    failures = []
    cluster = cluster or ClusterConfig()
    with store_lock(store), dask_client(cluster) as client:
        if inputs:
            failures = _compute_store(client, store, inputs, bundle, storage_options, cluster.task_memory_bytes)
        else:
            check_store_for_bundle(open_group(store, storage_options=storage_options), store, bundle)
            run_asr_stage(client, store, storage_options)
        log.info("predict: assigning %s to the bundle's %d unique LAEs", store, len(bundle.unique_soap))
        assignment = assign_to_dictionary(client, store, bundle.eps, bundle.unique_soap, bundle.unique_count,
                                          storage_options)
    group = open_group(store, storage_options=storage_options)
    if labels is not None and not labels.index.isin(set(group[GB_ID][:].tolist())).any():
        raise GbdistError(f"{labels.attrs.get('source', options.labels)}: no id matches a predicted GB "
                          f"(e.g. {', '.join(map(str, group[GB_ID][:3]))})")
    predictions = _predictions(group, bundle, assignment)
    out.mkdir(parents=True, exist_ok=True)
    predictions.to_csv(out / "predictions.csv", index=False)
    candidates = _write_candidates(group, bundle, assignment, out / "candidates")
    result = PredictResult(out, store, predictions, candidates, failures=failures)
    if labels is not None:
        result.scores = _score(predictions, bundle, labels, out)
    if options.annotate:
        _annotate(group, bundle, out / "annotated")
    result.wall_s = time.perf_counter() - t0
    (out / "predict.json").write_text(json.dumps(
        {"bundle": str(bundle.path), "store": store, "eps": bundle.eps, "in_domain": bundle.meta["in_domain"],
         "n_gb": len(predictions), "n_lae": int(predictions["n_lae"].sum()), "novel_rows": len(assignment.novel),
         "candidates": len(candidates), "scores": result.scores, "failures": failures, "wall_s": result.wall_s}, indent=1))
    (out / "report.md").write_text(_report(result, bundle))
    return result


def _predictions(group, bundle: Bundle, assignment: Assignment) -> pd.DataFrame:
    """One row per GB: id, every model's prediction, novel_fraction, n_lae, in_domain."""
    gb_ids = group[GB_ID][:]
    n_lae = np.diff(group[GB_OFFSET][:])
    novel_gb = group[LAE_GB].get_orthogonal_selection(assignment.novel) if len(assignment.novel) else np.zeros(0, int)
    novel_fraction = np.bincount(novel_gb, minlength=len(gb_ids)) / n_lae
    asr = group["asr"][:]
    reps = {"ASR": asr, "LER": ler_matrix(assignment.counts)}
    if area_problem(group) is None:
        reps["ASR_area"] = asr * region_thickness(group)[:, None]
    else:
        log.warning("no ASR_area predictions: %s", area_problem(group))
    frame = pd.DataFrame({"id": [str(i) for i in gb_ids]})
    for name, values in apply_models(bundle, reps).items():
        frame[name] = values
    frame["novel_fraction"] = novel_fraction
    frame["n_lae"] = n_lae
    frame["in_domain"] = novel_fraction <= bundle.in_domain_threshold
    return frame


def _write_candidates(group, bundle: Bundle, assignment: Assignment, folder: Path) -> pd.DataFrame:
    """``candidates.csv`` and one extxyz cluster per new candidate LAE (novel rows' leaders)."""
    rows = assignment.candidates
    gbs = group[LAE_GB].get_orthogonal_selection(rows) if len(rows) else np.zeros(0, np.int64)
    atoms = group[LAE_ATOM].get_orthogonal_selection(rows) if len(rows) else np.zeros(0, np.int64)
    gb_ids = group[GB_ID][:]
    table = pd.DataFrame({"candidate": np.arange(len(rows)), "gb": [str(gb_ids[g]) for g in gbs], "atom": atoms,
                          "row": rows, "novel_rows": assignment.candidate_count})
    if not len(rows):
        return table
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "candidates.csv", index=False)
    r_cut = float(bundle.params["soap"]["r_cut"])
    for k, (gb, atom) in enumerate(zip(gbs, atoms)):
        structure = gb_structure(group, int(gb), columns=[])
        cluster = cluster_around(structure, int(atom), r_cut, structure.extras["structure_type"])
        cluster.info.update({"candidate": k, "gb": str(gb_ids[gb]), "atom": int(atom), "r_cut": r_cut})
        ase.io.write(folder / f"new{k}.extxyz", cluster, format="extxyz")
    return table


def _score(predictions: pd.DataFrame, bundle: Bundle, labels: pd.DataFrame, out: Path) -> dict:
    """Scores as ``evaluate`` gives them, with a parity plot or confusion matrix per property."""
    ids = predictions["id"].to_numpy()
    frame = labels[labels.index.isin(set(ids))]
    frame.attrs = labels.attrs
    names = sorted({r["property"] for r in bundle.meta["models"]} & set(frame.columns))
    results = {}
    for prop in align_labels(frame, ids, names):
        panels = {}
        for record in (r for r in bundle.meta["models"] if r["property"] == prop.name):
            rep = record["representation"]
            predicted = predictions[f"{prop.name}_{rep}"].to_numpy()[prop.rows]
            if prop.kind == "classification":
                codes = np.searchsorted(np.asarray(prop.classes), predicted)
                results.setdefault(prop.name, {})[rep] = _plain(scores(prop.y, codes, prop.kind))
                k = prop.n_classes
                panels[rep] = np.bincount(prop.y * k + np.clip(codes, 0, k - 1), minlength=k * k).reshape(k, k)
            else:
                results.setdefault(prop.name, {})[rep] = _plain(scores(prop.y, predicted, prop.kind))
                panels[rep] = (prop.y, predicted)
        if prop.kind == "classification":
            confusion_plot(out / f"confusion_{prop.name}.png", panels, prop.classes, prop.name)
        else:
            parity_plot(out / f"parity_{prop.name}.png", panels, prop.name)
    return results


def _plain(values: dict) -> dict:
    return {k: float(v) for k, v in values.items()}


def _annotate(group, bundle: Bundle, folder: Path) -> None:
    """Per GB, ``<id>.extxyz``: its selected atoms with per-atom ``lae`` (−1 novel), ``similarity``,
    ``novel`` and ``cna``, in the structure's cell (OVITO reads the columns)."""
    from gbdist.compute.leaders import similarity_threshold

    folder.mkdir(parents=True, exist_ok=True)
    offsets, gb_ids = group[GB_OFFSET][:], group[GB_ID][:]
    threshold = similarity_threshold(bundle.eps)
    for gb in range(len(gb_ids)):
        rows = slice(int(offsets[gb]), int(offsets[gb + 1]))
        atom_ids = group[LAE_ATOM][rows]
        label, similarity = group[f"{ASSIGNED_GROUP}/label"][rows], group[f"{ASSIGNED_GROUP}/similarity"][rows]
        layout = layout_of(group, gb)
        structure = read_structure(group, layout, str(gb_ids[gb]))
        atoms = structure.to_ase(group[SITE][rows] - layout.atom_start)
        novel = similarity < threshold
        atoms.arrays["lae"] = np.where(novel, -1, label).astype(np.int64)
        atoms.arrays["similarity"] = similarity.astype(np.float64)
        atoms.arrays["novel"] = novel.astype(np.int64)
        atoms.arrays["cna"] = group[LAE_CNA][rows].astype(np.int64)
        atoms.arrays["atom_id"] = atom_ids.astype(np.int64)
        ase.io.write(folder / f"{gb_ids[gb]}.extxyz", atoms, format="extxyz")


def _report(result: PredictResult, bundle: Bundle) -> str:
    """``report.md``: what was predicted, how novel it is, the scores and the new candidate LAEs."""
    p = result.predictions
    nf = p["novel_fraction"]
    lines = [f"# Predictions with {bundle.path}", "",
             f"{len(p)} boundaries, {int(p['n_lae'].sum())} LAEs, assigned to the bundle's {len(bundle.unique_soap)} "
             f"unique LAEs at eps {bundle.eps:.4f} (trained on {bundle.meta['training']['n_gb']} GBs of "
             f"{bundle.meta['training']['store']}).", "",
             f"Novel fraction (rows farther than eps from every unique LAE): min {nf.min():.4f}, median "
             f"{nf.median():.4f}, max {nf.max():.4f}. In domain (novel fraction ≤ {bundle.in_domain_threshold:.4f}, "
             f"{bundle.meta['in_domain']['rule']}): {int(p['in_domain'].sum())} of {len(p)}.", "",
             f"New candidate LAEs: {len(result.candidates)}" + (" (`candidates/candidates.csv`, one extxyz each)."
                                                               if len(result.candidates) else "."), "",
             "Predictions: `predictions.csv`."]
    if result.scores:
        lines += ["", "| property | representation | score | figures |", "| --- | --- | --- | --- |"]
        for prop, cells in result.scores.items():
            for rep, cell in cells.items():
                extra = ", ".join(f"{k} {v:.4g}" for k, v in cell.items() if k != "score")
                lines.append(f"| {prop} | {rep} | {cell['score']:.1f} | {extra} |")
        lines += ["", "Scores as `gbdist evaluate`: energy 100·(1 − RMSE/mean), classes accuracy."]
    if result.failures:
        lines += ["", f"{len(result.failures)} structure(s) failed:", ""] + [f"- {f['error']}" for f in result.failures]
    return "\n".join(lines) + "\n"
