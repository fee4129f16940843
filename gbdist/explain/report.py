"""``gbdist explain``: the top unique LAEs for a property, as a report with pictures and extxyz files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import ase.io
import numpy as np

from gbdist.compute.crystal import FCC
from gbdist.compute.orientation import bicrystal_tilt_axis
from gbdist.compute.soap import check_store_rows
from gbdist.errors import GbdistError
from gbdist.explain.pictures import boundary_overview, boundary_picture, boundary_slab, lae_picture
from gbdist.explain.ranking import class_fractions, cluster_around, fcc_fraction, hcp_fraction, one_vs_rest, rank_laes
from gbdist.learning.labels import Property
from gbdist.store.schema import (
    GB_EXTENT,
    GB_ID,
    GB_NORMAL,
    UNIQUE_ATOM,
    UNIQUE_COUNT,
    UNIQUE_GB,
    block_energy_columns,
    lae_path,
    open_group,
    read_block_energies,
    resolve_eps,
)
from gbdist.store.structures import gb_structure, require_structures

log = logging.getLogger(__name__)


def _trace(group, eps: float) -> dict[str, np.ndarray]:
    return {"gb": group[lae_path(eps, UNIQUE_GB)][:], "atom": group[lae_path(eps, UNIQUE_ATOM)][:],
            "count": group[lae_path(eps, UNIQUE_COUNT)][:],
            "gb_id": group[GB_ID][:], "gb_normal": group[GB_NORMAL][:],
            "gb_extent": group[GB_EXTENT][:]}


def describe_lae(k: int, trace: dict, ler: np.ndarray, prop: Property) -> dict:
    """Where unique LAE k comes from and how common it is (per class)."""
    return lae_source(k, trace) | {"rows": int(trace["count"][k]), "gbs_containing": int(np.count_nonzero(ler[:, k] > 0)),
                                   "mean_fraction": class_fractions(ler, prop, k)}


def lae_source(k: int, trace: dict) -> dict:
    """Unique LAE k's source: its boundary (id and position, normal, extent) and centre atom id."""
    gb = int(trace["gb"][k])
    return {"lae": int(k), "gb": str(trace["gb_id"][gb]), "gb_position": gb, "normal": int(trace["gb_normal"][gb]),
            "extent": [float(x) for x in trace["gb_extent"][gb]], "atom": int(trace["atom"][k])}


def render_lae(entry: dict, structures: dict, group, r_cut: float, out: Path):
    """Cut the cluster around the LAE's source atom; write ``lae<k>.extxyz``, ``lae<k>.png`` and
    ``lae<k>_boundary.png`` (the LAE inside a thin slab of its boundary, seen along its tilt axis
    when it has one: found from the grains beyond the boundary extent the store recorded).

    Returns (the cluster (ase.Atoms), the slab). ``structures`` caches the boundaries read from the
    store (``group``) with their structure types (as the store's ``select`` found them) and tilt axes.
    """
    gb = entry["gb_position"]
    normal = entry["normal"] if entry["normal"] >= 0 else 2  # no flat boundary: the slab across z
    if gb not in structures:
        structure = gb_structure(group, gb, columns=[])
        cna = structure.extras["structure_type"]
        tilt = (bicrystal_tilt_axis(structure.positions, structure.cell, structure.pbc, cna == FCC, entry["normal"],
                                    tuple(entry["extent"])) if np.isfinite(entry["extent"]).all() else None)
        structures[gb] = (structure, cna, tilt)
    structure, cna, tilt = structures[gb]
    cluster = cluster_around(structure, entry["atom"], r_cut, cna)
    cluster.info.update({"lae": entry["lae"], "gb": entry["gb"], "atom": entry["atom"], "r_cut": r_cut})
    stem = f"lae{entry['lae']}"
    ase.io.write(out / f"{stem}.extxyz", cluster, format="extxyz")
    title = f"LAE {entry['lae']}: {entry['gb']} atom {entry['atom']}"
    lae_picture(out / f"{stem}.png", cluster.positions, cluster.arrays["cna"], title)
    centre = int(np.flatnonzero(structure.ids == entry["atom"])[0])
    slab = boundary_slab(structure.positions, structure.cell, structure.pbc, centre, normal, cna, tilt)
    boundary_picture(out / f"{stem}_boundary.png", slab, r_cut, title + " in its boundary")
    return cluster, slab


def draw_entry(entry: dict, structures: dict, group, r_cut: float, out: Path):
    """``render_lae`` for one entry, its files and CNA shares added to it; a picture that cannot be
    made is reported in ``entry["error"]`` (and the log) and None returned, else the slab."""
    k = entry["lae"]
    try:
        cluster, slab = render_lae(entry, structures, group, r_cut, out)
    except (GbdistError, ValueError) as err:
        entry["error"] = str(err)
        log.warning("LAE %d: no picture: %s", k, err)
        return None
    entry |= {"atoms": len(cluster), "hcp_fraction": hcp_fraction(cluster), "fcc_fraction": fcc_fraction(cluster),
              "extxyz": f"lae{k}.extxyz", "png": f"lae{k}.png", "boundary_png": f"lae{k}_boundary.png",
              "view": slab.view}
    return slab


def draw_laes(store: str, laes: list[int], out: Path, eps: float) -> list[dict]:
    """Draw the unique LAEs ``laes`` of the run at ``eps`` into ``out`` (as ``explain`` does): one entry
    each, naming its source boundary and atom and its pictures (or why there are none)."""
    group = open_group(store)
    require_structures(group, store)
    r_cut = group.attrs["params"]["soap"]["r_cut"]
    trace = _trace(group, eps)
    out.mkdir(parents=True, exist_ok=True)
    entries, structures = [], {}
    for k in laes:
        entry = lae_source(k, trace)
        draw_entry(entry, structures, group, r_cut, out)
        entries.append(entry)
    return entries


def explain(store: str, prop: Property, out: Path, klass: int | None = None, top: int = 10,
            eps: float | None = None, seed: int = 0) -> tuple[list[dict], float]:
    """Rank unique LAEs for ``prop`` (class ``klass`` vs the rest), render the top ones, write the report.

    Returns the top entries and the eps of the LAE run used (``eps``, or the store's chosen eps).
    """
    group = open_group(store)
    check_store_rows(store, group.attrs.get("soap_backend"))  # else the LAEs' atoms may not be the rows'
    eps = resolve_eps(group, store, eps)
    require_structures(group, store)
    r_cut = group.attrs["params"]["soap"]["r_cut"]
    ler = group[lae_path(eps, "ler")][:]
    try:
        target = one_vs_rest(prop, klass)
    except ValueError as err:
        raise GbdistError(str(err)) from None
    log.info("explain: fitting the LER model for %s", target.name)
    ranking = rank_laes(ler, target, seed=seed)
    trace = _trace(group, eps)
    out.mkdir(parents=True, exist_ok=True)
    entries, structures, pictures = [], {}, []
    blocks = {c: read_block_energies(group, eps, c) for c in block_energy_columns(group, eps)}  # after site-model
    for rank, k in enumerate(ranking.order[:top], start=1):
        entry = describe_lae(int(k), trace, ler, prop) | {
            "rank": rank, "gain": float(ranking.gain[k]), "mean_abs_shap": float(ranking.mean_abs_shap[k]),
            "mean_shap_in_class": float(ranking.mean_shap_in_class[k]),
            "block_energy": {c: {"mean_ev": float(b["mean"][k]), "std_ev": float(b["std"][k]), "rows": int(b["count"][k])}
                             for c, b in blocks.items()}}
        slab = draw_entry(entry, structures, group, r_cut, out)
        if slab is not None:
            pictures.append((f"#{rank} LAE {k} ({entry['gb']})", slab))
        entries.append(entry)
    if pictures:
        boundary_overview(out / "overview.png", pictures, [e["gain"] for e in entries if "png" in e], r_cut)
    (out / "explain.json").write_text(json.dumps({"store": store, "property": prop.name, "class": klass,
                                                  "eps": eps, "top": entries}, indent=1))
    (out / "report.md").write_text(report_markdown(entries, prop, klass, eps))
    return entries, eps


def report_markdown(entries: list[dict], prop: Property, klass: int | None, eps: float) -> str:
    """``report.md``: one row per top LAE, linking its picture and extxyz file."""
    what = f"{prop.name} = {klass} vs the rest" if klass is not None else prop.name
    fractions = list(entries[0]["mean_fraction"]) if entries else []
    columns = list(entries[0].get("block_energy", {})) if entries else []
    lines = [f"# Building blocks for {what}", "",
             f"Unique LAEs at eps {eps}, ranked by gain of an XGBoost model on the LER (settings chosen by CV "
             "on all labelled GBs); mean |SHAP| from XGBoost `pred_contribs`. Mean fraction: the LAE's share of "
             "a GB's environments, averaged over the GBs of each class. hcp / fcc: CNA share of the atoms within "
             "r_cut of the centre. Each LAE is drawn twice: the cluster cut out (two projections) and inside a "
             "thin slab of its boundary (GB plane horizontal, viewed along the boundary's tilt axis when it has one "
             "— found from the two grains' orientations — one lattice repeat thick, else along the in-plane box "
             "axis with the shortest period; filled / open circles for alternate atomic planes along the view, "
             "its r_cut dashed). The view column says which."
             + (" Mean excess (meV): the building block's energy, the mean of a per-atom column over the rows "
                "assigned to it (`gbdist site-model`)." if columns else ""), "",
             "![overview](overview.png)", "",
             "| rank | LAE | gain | mean abs SHAP | GB | atom | GBs with it | "
             + " | ".join(f"mean fraction ({c})" for c in fractions) + "".join(f" | mean {c} (meV)" for c in columns)
             + " | hcp | fcc | view | picture | cluster |",
             "|" + " --- |" * (12 + len(fractions) + len(columns))]
    for e in entries:
        cells = [str(e["rank"]), str(e["lae"]), f"{e['gain']:.3g}", f"{e['mean_abs_shap']:.3g}", e["gb"],
                 str(e["atom"]), str(e["gbs_containing"])] + [f"{e['mean_fraction'][c]:.4f}" for c in fractions]
        cells += [f"{1000 * e['block_energy'][c]['mean_ev']:.1f} ± {1000 * e['block_energy'][c]['std_ev']:.1f}"
                  for c in columns]
        if "png" in e:
            cells += [f"{e['hcp_fraction']:.2f}", f"{e['fcc_fraction']:.2f}", e["view"],
                      f"[cluster]({e['png']}) · [in its boundary]({e['boundary_png']})", f"[extxyz]({e['extxyz']})"]
        else:
            cells += ["–", "–", "–", f"not rendered: {e['error']}", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
