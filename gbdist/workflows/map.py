"""A map of every LAE (``gbdist map``): the PCA of all SOAP rows (dask-ml, on the workers), stored,
and pictures on PC1–PC2: density with the unique LAEs and the seeds (perfect crystals), structure types, a property, one GB.

With ``onto`` (another store that has a map, e.g. the training store of a model bundle), the
rows are placed on that store's map instead (e.g. the boundaries ``gbdist predict`` computed),
and drawn over its density."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gbdist.errors import GbdistError
from gbdist.explain.chemiscope import (
    MARGIN,
    SAMPLE,
    boundary_region,
    environment_sample,
    finite_properties,
    label_properties,
    type_names,
    write_chemiscope,
)
from gbdist.explain.maps import cna_map, density_map, gb_map, onto_map, property_map
from gbdist.learning.labels import align_labels, load_labels
from gbdist.stages.client import ClusterConfig, dask_client
from gbdist.stages.pca import PcaResult, project_onto, read_pca, run_pca_stage
from gbdist.stages.progress import as_completed_with_progress
from gbdist.stages.soap import normalised_params
from gbdist.store.lock import store_lock
from gbdist.store.schema import (
    ASSIGNED_GROUP,
    GB_ID,
    LAE_ATOM,
    LAE_CNA,
    LAE_GB,
    MAP_GROUP,
    UNIQUE_COUNT,
    UNIQUE_SOAP,
    UNIQUE_SOURCE,
    chosen_eps,
    lae_group_name,
    lae_path,
    open_group,
    resolve_eps,
    stage_done,
)
from gbdist.store.structures import SITE, atom_columns, column_at, require_structures


class MapOptions(BaseModel):
    """What the map holds and shows."""

    model_config = ConfigDict(extra="forbid")
    components: int = Field(10, ge=2, le=100, description="principal components fitted and stored")
    solver: Literal["incremental", "tsqr", "randomized"] = Field(
        "incremental", description="dask-ml solver: incremental (IncrementalPCA, streams the rows: any size) or "
        "tsqr / randomized (PCA, holds the rows in worker memory: small stores)")
    eps: float | None = Field(None, gt=0, lt=2, description="unique LAEs of this eps (default: the store's chosen)")
    labels: str | None = Field(None, description="labels for the property map (as for evaluate); with --chemiscope, "
                               "every label is a property of the dataset")
    property: str | None = Field(None, description="property coloured on the map (with --labels)")
    klass: int | None = Field(None, description="a class property: the share of LAEs from GBs of this class "
                              "(default: its first class)")
    gb: list[str] = Field(default_factory=list, description="GB ids whose LAEs are drawn over the map")
    onto: str | None = Field(None, description="a store with a map (gbdist map): place this store's rows on "
                             "that map instead of fitting a new one, and draw them over its density")
    chemiscope: str | None = Field(None, description="write the map as a chemiscope dataset to this file "
                                   "(.json.gz): a sample of the LAEs, each inside its atoms")
    chemiscope_size: int = Field(SAMPLE, ge=1, description="most LAEs in the chemiscope dataset (every unique "
                                 "LAE's source is always in)")


@dataclass
class MapResult:
    """The fitted PCA, the eps of the unique LAEs drawn, the pictures and the report."""

    pca: PcaResult
    eps: float | None
    pictures: list[Path]
    report: Path
    chemiscope: dict | None = None
    """what the chemiscope dataset holds: environments, structures, atoms, unique LAEs, seconds, bytes."""


def map_store(store: str, out: str | Path, options: MapOptions | None = None,
              cluster: ClusterConfig | None = None) -> MapResult:
    """Fit and store the PCA of the store's SOAP rows, then draw the maps into ``out``."""
    options = options or MapOptions()
    if options.onto:
        return _map_onto(store, Path(out), options, cluster)
    if options.property and not options.labels:
        raise GbdistError("--property needs --labels: the labels file it is a column of")
    if options.labels and not (options.property or options.chemiscope):
        raise GbdistError("--labels goes with --property (the map coloured by it) or --chemiscope (every label a "
                          "property of the dataset)")
    group = open_group(store)
    gb_ids = _gb_ids(group, store, options.gb)
    labels = load_labels(options.labels) if options.labels else None
    if options.property:  # checked before any work
        (prop,) = align_labels(labels, gb_ids, [options.property])
        per_gb, what = _per_gb_values(prop, options.klass, len(gb_ids))
    eps = resolve_eps(group, store, options.eps) if options.eps is not None or chosen_eps(group) is not None else None
    if options.chemiscope and eps is None:
        raise GbdistError(f"--chemiscope colours the map by unique LAE: {store} has none; run `gbdist lae` first")
    explore = None
    with store_lock(store), dask_client(cluster or ClusterConfig()) as client:
        pca = run_pca_stage(client, store, options.components, options.solver)
        if options.chemiscope:
            explore = chemiscope_file(client, open_group(store), store, eps, options.chemiscope, options.chemiscope_size,
                                      labels)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    xy = _pc12(group)
    cna, lae_gb, evr = group[LAE_CNA][:], group[LAE_GB][:], pca.explained_variance_ratio
    pictures = []
    if eps is not None:
        unique_xy = pca.project(group[lae_path(eps, UNIQUE_SOAP)][:])[:, :2]
        pictures.append(out / "map_density.png")
        seeds = group[lae_group_name(eps)].attrs.get("seeds", [{"lattice": "fcc", "host": None}])
        names = tuple(f"{s['lattice']} {s['host']}" if s.get("host") else s["lattice"] for s in seeds)
        density_map(pictures[-1], xy, evr, unique_xy, group[lae_path(eps, UNIQUE_COUNT)][:], eps, seeds=names)
    pictures.append(out / "map_cna.png")
    cna_map(pictures[-1], xy, evr, cna)
    if options.property:
        pictures.append(out / f"map_{prop.name}.png")
        property_map(pictures[-1], xy, evr, per_gb[lae_gb], what)
    for gb in options.gb:
        pictures.append(out / f"map_gb_{gb}.png")
        gb_map(pictures[-1], xy, evr, lae_gb == int(np.flatnonzero(gb_ids == gb)[0]), gb, cna)
    report = out / "report.md"
    report.write_text(_report(store, pca, eps, pictures, len(xy)))
    (out / "map.json").write_text(json.dumps({
        "store": store, "eps": eps, "components": options.components, "solver": options.solver,
        "explained_variance_ratio": pca.explained_variance_ratio.tolist(), "wall_s": pca.wall_s,
        "peak_rss_gib_per_worker": pca.peak_rss_gib_per_worker, "pictures": [p.name for p in pictures],
        "chemiscope": explore}, indent=1))
    return MapResult(pca, eps, pictures, report, explore)


def chemiscope_file(client, group, store: str, eps: float, path: str, size: int, labels=None) -> dict:
    """Write the store's map as a chemiscope dataset (``gbdist.explain.chemiscope``): a sample of at most
    ``size`` LAEs that holds every unique LAE's source row; the boundary regions around them are cut on
    the workers, one task per boundary. Properties: PC1–PC3, the unique LAE, the centre's structure type
    and its per-atom columns (a dump's ``c_pe``, …), the boundary and its ``labels`` (a labels frame).
    Returns what it holds and how long it took."""
    t0 = time.perf_counter()
    unique, sources = group[lae_path(eps, "label")][:], group[lae_path(eps, UNIQUE_SOURCE)][:]
    rows = environment_sample(unique, sources, size)
    extra = {}
    if labels is not None:
        gb_ids = group[GB_ID][:]
        extra = label_properties(align_labels(labels, gb_ids), group[LAE_GB].get_orthogonal_selection(rows), len(gb_ids))
    record = _write_sample(client, group, store, rows, {"unique LAE": unique[rows].astype(np.int64)}, extra, path,
                           name=f"LAE map of {Path(store).name}",
                           what=f"{len(rows):,} of {len(unique):,} LAEs (every unique LAE at eps {eps:.4f} among them)")
    return record | {"unique_laes": int(len(np.unique(unique[rows]))), "wall_s": time.perf_counter() - t0}


def _write_sample(client, group, store: str, rows: np.ndarray, first: dict, extra: dict, path: str, name: str,
                  what: str, colour: str = "unique LAE") -> dict:
    """The chemiscope file of the environments ``rows``: ``first`` properties (the colour among them),
    PC1–PC3, the structure type, the boundary, every per-atom column and ``extra`` (those with a value
    for every environment). Returns its size and what was left out."""
    require_structures(group, store)
    lae_gb, atom_ids = group[LAE_GB].get_orthogonal_selection(rows), group[LAE_ATOM].get_orthogonal_selection(rows)
    sites = group[SITE].get_orthogonal_selection(rows)
    coords = group[f"{MAP_GROUP}/coords"].get_orthogonal_selection((rows, slice(0, 3)))
    gb_ids, r_cut = group[GB_ID][:], float(group.attrs["params"]["soap"]["r_cut"])
    gbs = np.unique(lae_gb)  # rows ascending, so grouped by GB in this order
    futures = client.map(boundary_region, [store] * len(gbs), gbs.tolist(), [atom_ids[lae_gb == g] for g in gbs],
                         reach=r_cut + MARGIN, pure=False)
    by_future = {f.key: k for k, f in enumerate(futures)}
    regions = [None] * len(futures)
    for f in as_completed_with_progress(futures, "chemiscope regions"):
        regions[by_future[f.key]] = f.result()
    properties = dict(first) | {f"PC{k + 1}": coords[:, k].astype(np.float64) for k in range(coords.shape[1])}
    properties |= {"structure type": type_names(group[LAE_CNA].get_orthogonal_selection(rows)),
                   "boundary": [str(gb_ids[g]) for g in lae_gb]}
    columns = {c: column_at(group, c, sites) for c in atom_columns(group)}
    kept, left_out = finite_properties(columns | extra)
    properties |= kept
    write_chemiscope(path, regions, properties, r_cut, name=name, colour=colour,
                     description=f"{what}, each inside the atoms around it; PC1–PC3 of gbdist map")
    return {"path": str(path), "environments": len(rows), "structures": len(regions),
            "atoms": int(sum(len(a) for a, _ in regions)), "properties": list(properties), "left_out": left_out,
            "bytes": Path(path).stat().st_size}


def _gb_ids(group, store: str, wanted: list[str]) -> np.ndarray:
    """The store's GB ids (gb,) str; an error naming ``--gb`` if any of ``wanted`` is not among them."""
    gb_ids = np.array([str(i) for i in group[GB_ID][:]])
    unknown = [g for g in wanted if g not in set(gb_ids)]
    if unknown:
        raise GbdistError(f"--gb: {', '.join(unknown)} not in {store}")
    return gb_ids


def _pc12(group) -> np.ndarray:
    """Every row's stored coordinates on PC1–PC2, (lae, 2) float64."""
    return group[f"{MAP_GROUP}/coords"].get_orthogonal_selection((slice(None), [0, 1])).astype(np.float64)


def _map_onto(store: str, out: Path, options: MapOptions, cluster: ClusterConfig | None) -> MapResult:
    """Place ``store``'s rows on the map of ``options.onto``; draw them (and each ``--gb``) over its density."""
    if options.labels or options.property:
        raise GbdistError("--onto draws this store's LAEs on another store's map; --labels/--property go without it")
    group, base = open_group(store), open_group(options.onto)
    assigned = ASSIGNED_GROUP in group and "eps" in group[ASSIGNED_GROUP].attrs  # written by gbdist predict
    if options.chemiscope and not assigned:
        raise GbdistError(f"--chemiscope with --onto shows a predicted store's novelty: {store} has no assignment to a "
                          "model bundle's unique LAEs; run `gbdist predict BUNDLE --store` on it first")
    if not stage_done(base, "map"):
        raise GbdistError(f"--onto {options.onto}: no map there yet; run `gbdist map --store {options.onto}` first")
    if normalised_params(base.attrs.get("params", {})) != normalised_params(group.attrs.get("params", {})):
        raise GbdistError(f"--onto {options.onto}: computed with other read/select/SOAP parameters than {store}; "
                          "their SOAP rows do not share a map")
    gb_ids = _gb_ids(group, store, options.gb)
    with store_lock(store), dask_client(cluster or ClusterConfig()) as client:
        pca = project_onto(client, store, read_pca(base), options.onto)
    out.mkdir(parents=True, exist_ok=True)
    background, xy = _pc12(base), _pc12(group)
    cna, lae_gb, evr = group[LAE_CNA][:], group[LAE_GB][:], pca.explained_variance_ratio
    novel = None
    if assigned:
        from gbdist.compute.leaders import similarity_threshold

        novel = group[f"{ASSIGNED_GROUP}/similarity"][:] < similarity_threshold(group[ASSIGNED_GROUP].attrs["eps"])
    explore = None
    if options.chemiscope:
        with dask_client(cluster or ClusterConfig()) as client:
            explore = _chemiscope_onto(client, group, store, options, novel)
    pictures = [out / "map_onto.png"]
    onto_map(pictures[0], background, evr, xy, cna, novel, f"{len(gb_ids)} boundaries of {Path(store).name}")
    for gb in options.gb:
        mine = lae_gb == int(np.flatnonzero(gb_ids == gb)[0])
        pictures.append(out / f"map_gb_{gb}.png")
        onto_map(pictures[-1], background, evr, xy[mine], cna[mine], None if novel is None else novel[mine], gb)
    report = out / "report.md"
    report.write_text(_report(store, pca, None, pictures, len(xy), options.onto))
    (out / "map.json").write_text(json.dumps({
        "store": store, "onto": options.onto, "explained_variance_ratio": evr.tolist(), "wall_s": pca.wall_s,
        "peak_rss_gib_per_worker": pca.peak_rss_gib_per_worker, "pictures": [p.name for p in pictures],
        "novel_rows": None if novel is None else int(novel.sum()), "chemiscope": explore}, indent=1))
    return MapResult(pca, None, pictures, report, explore)


def _chemiscope_onto(client, group, store: str, options: MapOptions, novel: np.ndarray) -> dict:
    """The chemiscope file of a predicted store placed on another store's map: a sample stratified by
    each row's nearest unique LAE of the bundle, coloured by novelty (1: no unique LAE within eps)."""
    t0 = time.perf_counter()
    nearest = group[f"{ASSIGNED_GROUP}/label"][:]
    rows = environment_sample(nearest, np.zeros(0, np.int64), options.chemiscope_size)
    first = {"novel": novel[rows].astype(np.int64), "nearest unique LAE": nearest[rows].astype(np.int64),
             "similarity": group[f"{ASSIGNED_GROUP}/similarity"].get_orthogonal_selection(rows).astype(np.float64)}
    record = _write_sample(client, group, store, rows, first, {}, options.chemiscope, colour="novel",
                           name=f"LAEs of {Path(store).name} on the map of {Path(options.onto).name}",
                           what=f"{len(rows):,} of {len(nearest):,} LAEs, each with its nearest unique LAE of the model "
                                "bundle and whether it is novel")
    return record | {"novel": int(first["novel"].sum()), "wall_s": time.perf_counter() - t0}


def _per_gb_values(prop, klass: int | None, n_gb: int) -> tuple[np.ndarray, str]:
    """(n_gb,) value drawn per GB (NaN where unlabelled) and its description: for a class
    property 1 if the GB has class ``klass`` (default the first) else 0; else the value."""
    per_gb = np.full(n_gb, np.nan)
    if prop.kind != "classification":
        per_gb[prop.rows] = prop.y
        return per_gb, f"mean {prop.name} of the LAEs' GBs"
    klass = prop.classes[0] if klass is None else klass
    if klass not in prop.classes:
        raise GbdistError(f"--class {klass}: {prop.name} has classes {list(prop.classes)}")
    per_gb[prop.rows] = (np.asarray(prop.classes)[prop.y] == klass).astype(float)
    return per_gb, f"share of LAEs from GBs with {prop.name} = {klass}"


def _report(store: str, pca: PcaResult, eps: float | None, pictures: list[Path], n_rows: int,
            onto: str | None = None) -> str:
    evr = pca.explained_variance_ratio
    if onto:
        head = (f"All {n_rows:,} unit SOAP rows placed on the map of {onto} (its principal axes; explained variance "
                f"as measured there), in {pca.wall_s:.1f} s, peak RSS per worker {pca.peak_rss_gib_per_worker:.2f} GiB. "
                f"Stored in the store's `{MAP_GROUP}/` group.")
    else:
        head = (f"PCA of all {n_rows:,} unit SOAP rows, {len(evr)} leading components (dask-ml, on the workers), in "
                f"{pca.wall_s:.1f} s, peak RSS per worker {pca.peak_rss_gib_per_worker:.2f} GiB. Stored in the store's "
                f"`{MAP_GROUP}/` group (components, mean, explained variance, every row's coordinates).")
    lines = [f"# A map of every LAE in {store}", "", head, "",
             "| component | explained variance (%) | cumulative (%) |", "| --- | --- | --- |"]
    lines += [f"| PC{k + 1} | {100 * v:.2f} | {100 * c:.2f} |" for k, (v, c) in enumerate(zip(evr, np.cumsum(evr)))]
    if not onto:
        lines += ["", f"Unique LAEs at eps {eps:.4f}." if eps is not None else "No LAE run: no unique LAEs drawn."]
    lines += [""]
    lines += [f"![{p.stem}]({p.name})" for p in pictures]
    return "\n".join(lines) + "\n"
