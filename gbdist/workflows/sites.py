"""``gbdist site-energy``: per-atom excess energies of a store's structures under an EAM potential or EMT,
and each boundary's energy from them, compared with labels when given. ``gbdist site-model``: a
per-atom model of such a column, scored with whole boundaries held out, and the building-block energies."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from gbdist.compute.boundary_energy import block_energies
from gbdist.errors import GbdistError
from gbdist.explain.report import draw_laes
from gbdist.learning.labels import Property, align_labels, load_labels
from gbdist.learning.models import energy_score, random_halves
from gbdist.learning.plots import parity_plot, site_parity_plot
from gbdist.learning.protocol import run_table1
from gbdist.learning.reports import site_model_markdown
from gbdist.learning.sites import SiteModelParams, SiteRows, SoapRows, evaluate_site_split, read_site_rows
from gbdist.stages.client import ClusterConfig, dask_client
from gbdist.stages.sites import SiteEnergyReport, boundary_energies, run_site_energy_stage
from gbdist.store.lock import store_lock
from gbdist.store.representations import area_problem, read_representations
from gbdist.store.schema import GB_ID, open_group, write_block_energies
from gbdist.store.structures import atom_columns, column_path, require_structures

log = logging.getLogger(__name__)


class SiteEnergyOptions(BaseModel):
    """How site energies are computed and summed per boundary."""

    model_config = ConfigDict(extra="forbid")
    potential: str = Field(description="EAM potential file (LAMMPS .eam, .eam.alloy or .eam.fs; .xz/.gz too), "
                           "or 'emt' for EMT (Ni, Cu, Al, Ag, Au, Pd, Pt)")
    column: str = Field("excess_energy", pattern=r"^[A-Za-z0-9_.\-]+$",
                        description="per-atom column the excess energies (eV) are written to")
    window: float = Field(10.0, gt=0, description="Å either side of a boundary's plane whose atoms its energy sums")
    labels: str | None = Field(None, description="labels to compare the boundary energies with (as for evaluate)")
    property: str = Field("energy", description="the labels' column of boundary energies, J/m²")


@dataclass
class SiteEnergyResult:
    report: SiteEnergyReport
    boundaries: pd.DataFrame
    """per boundary: energy (J/m²), atoms summed, area (Å²), and with labels: label, relative error."""
    within_2_percent: int | None = None


def site_energies(store: str, out: str | Path, options: SiteEnergyOptions,
                  cluster: ClusterConfig | None = None) -> SiteEnergyResult:
    """Compute the site energies into ``store`` and write ``boundaries.csv`` and ``site_energy.json``
    to ``out``."""
    labels = load_labels(options.labels) if options.labels else None  # checked before any work
    if labels is not None and options.property not in labels.columns:
        raise GbdistError(f"--property {options.property}: not a column of {options.labels} "
                          f"({', '.join(map(str, labels.columns))})")
    with store_lock(store), dask_client(cluster or ClusterConfig()) as client:
        report = run_site_energy_stage(client, store, options.potential, options.column)
    table = boundary_energies(open_group(store), options.column, options.window)
    within = None
    if labels is not None:
        table["label"] = labels[options.property].reindex(table.index).to_numpy(dtype=float)
        table["relative_error"] = table["energy"] / table["label"] - 1.0
        within = int((table["relative_error"].abs() <= 0.02).sum())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "boundaries.csv")
    (out / "site_energy.json").write_text(json.dumps({
        "store": store, "potential": Path(options.potential).name, "column": options.column,
        "window": options.window, "atoms": report.atoms, "wall_s": report.wall_s, "failures": report.failures,
        "boundaries": int(np.isfinite(table["energy"]).sum()), "within_2_percent": within}, indent=1))
    return SiteEnergyResult(report, table, within)


class SiteModelOptions(BaseModel):
    """A per-atom model of a site property, scored with whole boundaries held out (Table I's splits)."""

    model_config = ConfigDict(extra="forbid")
    column: str = Field("excess_energy", description="the per-atom column learned (eV for an energy)")
    labels: str = Field(description="boundary energies to score the summed predictions against (as for evaluate)")
    property: str = Field("energy", description="the labels' column of boundary energies, J/m²")
    window: float = Field(10.0, gt=0, description="Å either side of a boundary's plane whose atoms its energy sums")
    splits: int = Field(20, ge=2, description="random 50/50 splits of the labelled boundaries")
    seed: int = Field(0, description="seed of the splits and boosters")
    eps: float | None = Field(None, gt=0, lt=2, description="unique LAEs of this eps (default: the store's chosen eps)")
    top: int = Field(4, ge=0, description="cheapest and costliest building blocks drawn")
    model: SiteModelParams = Field(default_factory=SiteModelParams)


@dataclass
class SiteModelResult:
    """Per split: per-atom MAE (meV) and R², energy scores of the summed site predictions, the additive
    building-block model and ASR_area on the same splits; the building blocks (per unique LAE)."""

    splits: pd.DataFrame
    blocks: pd.DataFrame
    summary: dict


def _energy_property(options: SiteModelOptions, group) -> Property:
    labels = load_labels(options.labels)
    (prop,) = align_labels(labels, group[GB_ID][:], [options.property])
    if prop.kind != "regression":
        raise GbdistError(f"{options.labels}: column {options.property!r} looks like classes, not boundary energies")
    return prop


def _paired(a: np.ndarray, b: np.ndarray) -> dict:
    """Mean of the paired differences a − b over splits, its standard error and mean / SE."""
    d = np.asarray(a) - np.asarray(b)
    se = float(np.std(d, ddof=1) / np.sqrt(len(d)))
    return {"mean": float(d.mean()), "se": se, "mean_over_se": float(d.mean() / se) if se > 0 else float("inf")}


def site_model(store: str, out: str | Path, options: SiteModelOptions,
               cluster: ClusterConfig | None = None) -> SiteModelResult:
    """Score per-atom models of ``options.column`` over boundary-held-out splits, beside ASR_area on the
    same splits; store the building-block energies; write ``report.md``, ``site_model.json``,
    ``splits.csv``, ``boundaries.csv``, ``building_blocks.csv`` and figures to ``out``."""
    group = open_group(store)
    require_structures(group, store)
    if options.column not in atom_columns(group) and column_path(options.column) not in group:
        raise GbdistError(f"--column {options.column}: no such per-atom column in {store} "
                          f"(have: {', '.join(atom_columns(group)) or 'none'}; `gbdist site-energy` computes one)")
    prop = _energy_property(options, group)
    rows = read_site_rows(group, store, options.column, options.eps)
    reps = read_representations(group, rows.eps, store)
    if "ASR_area" not in reps:
        raise GbdistError(f"{store}: {area_problem(group) or 'no ASR yet'}; the site model is paired with ASR_area")
    splits = random_halves(len(prop.y), options.splits, options.seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with dask_client(cluster or ClusterConfig()) as client:
        table1 = run_table1(client, {"ASR_area": reps["ASR_area"][0]}, [prop], options.splits, options.seed)
        soap = SoapRows(store)
        records, held_out = [], []
        for i, (train, test) in enumerate(splits):
            log.info("site model: split %d of %d", i + 1, len(splits))
            r = evaluate_site_split(client, soap, rows, prop.rows[train], prop.rows[test], options.model, options.window,
                                    options.seed + i)
            y = prop.y[test]
            records.append({"split": i, "mae_mev": r["mae_mev"], "r2": r["r2"], "rows": r["rows"],
                            "n_rounds": r["n_rounds"], "site": _score(y, r["site"]), "additive": _score(y, r["additive"]),
                            "truth": _score(y, r["truth"]),
                            "ASR_area": table1[prop.name]["ASR_area"].scores[i],
                            "wall_s": r["wall_s"], "peak_rss_gib": r["peak_rss_gib"]})
            held_out.append(pd.DataFrame({"split": i, "id": group[GB_ID].get_orthogonal_selection(prop.rows[test]),
                                          "label": y, "site": r["site"], "additive": r["additive"],
                                          "ASR_area": table1[prop.name]["ASR_area"].predictions[i][2]}))
            if i == 0:
                scored = rows.rows_of(prop.rows[test])
                atom_panel = (rows.value[scored], r["predicted"])
    frame = pd.DataFrame(records)
    boundaries = pd.concat(held_out, ignore_index=True)
    blocks = _store_blocks(store, rows, options.column)
    summary = _summary(frame, options, rows, prop) | {"store": store}
    _write_site_model(out, frame, boundaries, blocks, summary, atom_panel, options)
    return SiteModelResult(frame, blocks, summary)


def _score(y: np.ndarray, estimate: np.ndarray) -> float:
    """Table I's energy score over the boundaries with an estimate (all with a flat boundary)."""
    finite = np.isfinite(estimate)
    return energy_score(y[finite], estimate[finite]) if finite.any() else float("nan")


def _store_blocks(store: str, rows: SiteRows, column: str) -> pd.DataFrame:
    """The building-block energies over every row (a description, not a score), stored beside the LAEs."""
    count, mean, spread = block_energies(rows.label, rows.value, rows.n_unique)
    with store_lock(store):
        write_block_energies(open_group(store, mode="a"), rows.eps, column, count, mean, spread)
    return pd.DataFrame({"lae": np.arange(rows.n_unique), "count": count, "mean_ev": mean, "std_ev": spread})


def _summary(frame: pd.DataFrame, options: SiteModelOptions, rows: SiteRows, prop: Property) -> dict:
    stats = {key: {"mean": float(frame[key].mean()), "std": float(frame[key].std(ddof=1))}
             for key in ("mae_mev", "r2", "site", "additive", "truth", "ASR_area", "n_rounds", "wall_s", "peak_rss_gib")}
    return {"column": options.column, "property": prop.name, "labels": options.labels, "splits": options.splits,
            "seed": options.seed, "eps": rows.eps, "window": options.window, "rows": int(len(rows.gb)),
            "boundaries": int(len(prop.y)), "model": options.model.model_dump(), "stats": stats,
            "site_minus_ASR_area": _paired(frame["site"], frame["ASR_area"]),
            "additive_minus_ASR_area": _paired(frame["additive"], frame["ASR_area"])}


MIN_BLOCK_ROWS = 20
"""Rows a unique LAE needs for its mean excess to be reported among the cheapest and costliest."""


def _write_site_model(out: Path, splits: pd.DataFrame, boundaries: pd.DataFrame, blocks: pd.DataFrame,
                      summary: dict, atom_panel: tuple[np.ndarray, np.ndarray], options: SiteModelOptions) -> None:
    splits.to_csv(out / "splits.csv", index=False)
    boundaries.to_csv(out / "boundaries.csv", index=False)
    blocks.to_csv(out / "building_blocks.csv", index=False)
    known = np.isfinite(atom_panel[0])
    site_parity_plot(out / "parity_atoms.png", atom_panel[0][known], atom_panel[1][known], "eV")
    parity_plot(out / "parity_boundaries.png",
                {name: (boundaries["label"].to_numpy(), boundaries[name].to_numpy())
                 for name in ("site", "additive", "ASR_area")}, "energy (J/m²)")
    common = blocks[blocks["count"] >= MIN_BLOCK_ROWS].sort_values("mean_ev")
    chosen = pd.concat([common.head(options.top), common.tail(options.top)]).drop_duplicates("lae")
    drawn = draw_laes(summary["store"], [int(k) for k in chosen["lae"]], out / "blocks", summary["eps"])
    entries = [d | {"count": int(b.count), "mean_ev": float(b.mean_ev), "std_ev": float(b.std_ev)}
               for d, b in zip(drawn, chosen.itertuples())]
    for e in entries:  # pictures live in blocks/
        for key in ("png", "boundary_png", "extxyz"):
            if key in e:
                e[key] = f"blocks/{e[key]}"
    summary = summary | {"blocks_drawn": entries}
    (out / "site_model.json").write_text(json.dumps(summary, indent=1))
    (out / "report.md").write_text(site_model_markdown(summary, entries))
