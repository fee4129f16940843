"""The select + SOAP stage driver: structures → LAE plan → SOAP rows in the store, over Dask.

1. Every input file is read (its only read), its GB region selected and, if large, cut into
   spatial domains on the workers, one task per file; the counts give every row offset, written
   to the store with the LAE atom ids and CNA; then each structure's atoms are written to the
   store (``gbdist.store.structures``) from the worker that read it.
2. The row space is cut at ``soap`` chunk boundaries; one task per chunk computes exactly
   its rows (reading from the store the atoms of each GB it touches: the whole structure, or
   its centres' domains and their halo) and writes its chunk, its norms, its per-GB sums
   (``partial/asr_*``: the ASR needs no pass of its own) and then its ``progress/soap`` flag.
   No two tasks write the same chunk; a rerun computes only the
   chunks whose flag is unset.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr
from dask.base import tokenize
from pydantic import BaseModel, ConfigDict, Field

from gbdist.compute.asr import gb_row_sums
from gbdist.compute.domains import DOMAIN_ATOMS, SPLIT_ATOMS, centre_order, domain_grid, domain_order
from gbdist.compute.select import SelectParams, select_gb_region
from gbdist.compute.soap import (
    SoapParams,
    backend_version,
    crop_width,
    n_features,
    old_featomic_rows,
    soap_rows,
    species_symbols,
    unit_rows,
)
from gbdist.errors import GbdistError, StoreError
from gbdist.io import ReadParams, read_structure
from gbdist.rss import peak_rss_bytes, release_free_memory
from gbdist.stages.progress import as_completed_with_progress
from gbdist.stages.watchdog import task_error
from gbdist.store.schema import (
    GB_EXTENT,
    GB_ID,
    GB_LATTICE,
    GB_N_ATOMS,
    GB_NORMAL,
    GB_OFFSET,
    GB_RULE,
    GB_SELECTION,
    GB_SOURCE,
    LAE_ATOM,
    LAE_CNA,
    LAE_GB,
    LAE_SOAP_NORM,
    PROGRESS_SOAP,
    PROGRESS_SOAP_CPU,
    SOAP_COMPRESSOR,
    RowPlan,
    StoreArrays,
    create_asr_partials,
    create_store_array,
    mark_stage,
    open_group,
    stage_done,
    write_array,
    write_asr_partial,
)
from gbdist.store.structures import (
    SITE,
    StructureLayout,
    centre_environment,
    layouts,
    numeric_columns,
    require_structures,
    write_atoms,
    write_layout,
)
from gbdist.structure import Structure

log = logging.getLogger(__name__)


class SoapStageParams(BaseModel):
    """Everything that decides the store's rows and values (recorded in the store)."""

    model_config = ConfigDict(extra="forbid")
    read: ReadParams = ReadParams()
    select: SelectParams = SelectParams()
    soap: SoapParams = SoapParams()
    chunk_rows: int = Field(4096, ge=16, description="LAE rows per soap chunk (one task each)")
    split_atoms: int = Field(SPLIT_ATOMS, ge=1, description="atoms above which a structure is cut into domains")
    domain_atoms: int = Field(DOMAIN_ATOMS, ge=1, description="atoms per domain aimed at when one is cut")


@dataclass
class SoapReport:
    """What the stage did, for the summary."""

    n_gb: int = 0
    n_lae: int = 0
    n_features: int = 0
    chunks_total: int = 0
    chunks_computed: int = 0
    select_wall_s: float = 0.0
    soap_wall_s: float = 0.0
    kernel_cpu_s: float = 0.0
    worker_threads: int = 1
    failures: list[dict] = field(default_factory=list)
    peak_rss: dict[str, int] = field(default_factory=dict)
    """bytes, peak resident memory of each worker that ran a SOAP task of this run (by address)."""
    selected_share: float = 0.0
    """LAEs ÷ atoms of the selected structures."""
    structures: dict[str, int] = field(default_factory=dict)
    """structures per 'lattice · rule'."""

    @property
    def peak_rss_gib(self) -> float:
        """GiB, the largest peak RSS of a worker in this run's SOAP tasks (0 if none ran)."""
        return max(self.peak_rss.values(), default=0) / 2**30

    @property
    def efficiency(self) -> float | None:
        """SOAP kernel CPU-s ÷ (SOAP wall × worker threads), for this run's chunks."""
        if not self.chunks_computed or self.soap_wall_s <= 0:
            return None
        return self.kernel_cpu_s / (self.soap_wall_s * self.worker_threads)


@dataclass
class Ingested:
    """One input read and selected on a worker, kept there until its atoms are written: the
    structure and every atom's structure type, both already in stored (domain) order, and the
    selection record the driver gathers (``record``)."""

    structure: Structure
    types: np.ndarray
    record: dict


def ingest_file(path: str, params: SoapStageParams) -> Ingested | dict:
    """Worker task: read one file (its only read), select its LAEs and cut it into domains; errors
    come back as data. LAE rows are ordered by atom id, or in a structure cut into domains by domain,
    cell of about 2 r_cut within it, then atom id (``centre_order``)."""
    try:
        structure = read_structure(path, params.read)
        sel = select_gb_region(structure, params.select)
    except GbdistError as err:
        return {"path": path, "error": str(err)}
    release_free_memory()
    species = species_symbols(structure.numbers)
    halo = crop_width(params.soap, species)
    grid = domain_grid(structure, halo, params.split_atoms, params.domain_atoms)
    order, domains = domain_order(structure, grid)
    stored = np.empty(len(order), np.int64)
    stored[order] = np.arange(len(order))  # stored row of each atom of the file
    centre_domains = np.searchsorted(domains, stored[sel.centres], side="right") - 1
    centres = centre_order(structure, grid, sel.centres, centre_domains, halo)
    record = {
        "path": path, "n_atoms": len(structure), "normal": sel.normal, "extent": sel.extent, "rule": sel.rule,
        "lattice": sel.lattice, "lattice_constant": sel.lattice_constant, "host": sel.host,
        "thickness": sel.thickness, "atom": structure.ids[centres], "site": stored[centres],
        "cna": sel.atom_types[centres], "species": species, "columns": numeric_columns(structure),
        "cell": structure.cell, "origin": structure.origin, "pbc": structure.pbc, "grid": grid, "domains": domains,
    }
    types = sel.atom_types
    if np.prod(grid) == 1:  # one domain: file order is stored order
        return Ingested(structure, types, record)
    del sel, stored, centres, centre_domains
    release_free_memory()
    structure, types = in_stored_order(structure, types, order)
    release_free_memory()
    return Ingested(structure, types, record)


def in_stored_order(structure: Structure, types: np.ndarray, order: np.ndarray) -> tuple[Structure, np.ndarray]:
    """The structure and its structure types (n,) with every per-atom array permuted by ``order``, one
    array at a time (one copy alive, not the structure twice), so that its atoms are written as slices."""
    structure.positions = structure.positions[order]
    structure.numbers = structure.numbers[order]
    structure.ids = structure.ids[order]
    for name in list(structure.extras):
        structure.extras[name] = np.asarray(structure.extras[name])[order]
    return structure, np.asarray(types)[order]


def record_of(ingested: Ingested | dict) -> dict:
    """Worker task: the selection record of ``ingest_file``'s result (what the driver gathers)."""
    return ingested.record if isinstance(ingested, Ingested) else ingested


def store_atoms(ingested: Ingested, store: str, storage_options: dict | None, start: int,
                columns: list[str]) -> int:
    """Worker task: write an ingested structure's atoms to rows ``start``… of the store; returns
    how many."""
    write_atoms(StoreArrays(store, "r+", storage_options), start, ingested.structure, ingested.types, columns)
    return len(ingested.structure)


def _ingest_all(client, store: str, storage_options: dict | None, inputs: list[dict], params: SoapStageParams,
                species: list[str] | None, group: zarr.Group) -> list[dict]:
    """Read and select every file on the workers (one task per file, so a file whose task kills
    its worker fails by name and the others finish), write the plan and then every selected
    structure's atoms from the worker that read it; returns the failures."""
    paths = [r["path"] for r in inputs]
    ingested = [client.submit(ingest_file, path, params, key=f"ingest-{i}-{tokenize(path, params)}")
                for i, path in enumerate(paths)]
    records = [client.submit(record_of, f, key=f"ingest-record-{f.key}") for f in ingested]
    path_of = {f.key: path for f, path in zip(records, paths)}
    results = {}
    for f in as_completed_with_progress(records, "select"):
        try:
            results[path_of[f.key]] = f.result()
        except Exception as err:
            why = task_error(client, err)
            if why is None:
                raise
            results[path_of[f.key]] = {"path": path_of[f.key], "error": f"{Path(path_of[f.key]).name}: {why}"}
    results = [results[p] for p in paths]
    if species:
        _foreign_species(results, species)
    selected = [r for r in results if "error" not in r]
    failures = [{"path": r["path"], "error": r["error"]} for r in results if "error" in r]
    if not selected:
        group.attrs["failures"] = failures
        raise GbdistError("no structure could be read and selected:\n  " + "\n  ".join(f["error"] for f in failures))
    columns = sorted({c for r in selected for c in r["columns"]})
    starts = write_plan(group, inputs, selected, params.chunk_rows, params.soap, species, columns)
    future_of = dict(zip(paths, ingested))
    writes = [client.submit(store_atoms, future_of[r["path"]], store, storage_options, int(start), columns,
                            key=f"store-atoms-{future_of[r['path']].key}")
              for r, start in zip(selected, starts)]
    del future_of, ingested, records
    for f in as_completed_with_progress(writes, "store atoms"):
        f.result()
    return failures


def _foreign_species(results: list[dict], species: list[str]) -> None:
    """Turn each selected structure with an element outside ``species`` into a failure, in place."""
    for i, r in enumerate(results):
        extra = sorted(set(r.get("species", [])) - set(species))
        if "error" not in r and extra:
            results[i] = {"path": r["path"], "error": f"{Path(r['path']).name}: element(s) {', '.join(extra)} "
                                                      f"not among the model bundle's species ({', '.join(species)})"}


def write_plan(group: zarr.Group, inputs: list[dict], selected: list[dict], chunk_rows: int,
               soap: SoapParams, species: list[str] | None = None, columns: list[str] = ()) -> np.ndarray:
    """Write the LAE plan (gb/*, lae/*), the structures' layout, the empty ``atoms/*`` arrays (with
    ``columns``) and the empty ``soap`` arrays; returns each structure's first atom row.

    ``species`` fixes the SOAP species (and so the feature layout), e.g. a model bundle's;
    by default they are those of the selected structures.
    """
    counts = np.array([len(s["atom"]) for s in selected], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    plan = RowPlan(offsets, chunk_rows)
    species = sorted(species) if species else sorted({sp for s in selected for sp in s["species"]})
    n_feat = n_features(soap, species)
    by_path = {rec["path"]: rec for rec in inputs}
    write_array(group, GB_ID, np.array([by_path[s["path"]]["id"] for s in selected], dtype=str), ["gb"])
    write_array(group, GB_SOURCE, np.array([s["path"] for s in selected], dtype=str), ["gb"])
    write_array(group, GB_OFFSET, offsets, ["gb_edge"])
    write_array(group, GB_N_ATOMS, np.array([s["n_atoms"] for s in selected], np.int32), ["gb"])
    write_array(group, GB_NORMAL, np.array([s["normal"] for s in selected], np.int8), ["gb"])
    write_array(group, GB_EXTENT, np.array([s["extent"] for s in selected], np.float64).reshape(-1, 2),
                ["gb", "bound"])
    for name, path in GB_SELECTION.items():
        values = np.array([s[name] for s in selected])
        write_array(group, path, values.astype(str if values.dtype.kind in "OU" else np.float64), ["gb"])
    starts = write_layout(group, selected, list(columns))
    rows = (chunk_rows,)
    write_array(group, LAE_GB, np.repeat(np.arange(len(selected), dtype=np.int32), counts), ["lae"], rows)
    write_array(group, LAE_ATOM, np.concatenate([s["atom"] for s in selected]).astype(np.int64), ["lae"], rows)
    write_array(group, SITE, np.concatenate([s["site"] + start for s, start in zip(selected, starts)]).astype(np.int64),
                ["lae"], rows)
    write_array(group, LAE_CNA, np.concatenate([s["cna"] for s in selected]).astype(np.int8), ["lae"], rows)
    n_rows, n_chunks = plan.n_rows, plan.n_chunks
    for name, dims, shape, chunks, dtype in (
        ("soap", ["lae", "feature"], (n_rows, n_feat), (chunk_rows, n_feat), np.float32),
        (LAE_SOAP_NORM, ["lae"], (n_rows,), rows, np.float32),
        (PROGRESS_SOAP, ["soap_chunk"], (n_chunks,), (1,), np.uint8),
        (PROGRESS_SOAP_CPU, ["soap_chunk"], (n_chunks,), (1,), np.float64),
    ):
        create_store_array(group, name, shape=shape, chunks=chunks, dtype=dtype, fill_value=0, dimension_names=dims,
                           compressor=SOAP_COMPRESSOR if name == "soap" else None)
    create_asr_partials(group, plan, n_feat)
    group.attrs["species"] = species
    return starts


@dataclass(frozen=True)
class ChunkWork:
    """What a SOAP task needs to know of the store's plan for ``soap`` chunk k, made by the driver:
    rows [start, stop) and, for each GB with rows there, (its layout, its id, normal axis, first
    row, stop row). A task then reads no per-GB array whole, so its cost does not grow with the
    number of GBs in the store."""

    k: int
    start: int
    stop: int
    gbs: tuple[tuple[StructureLayout, str, int, int, int], ...]

    @classmethod
    def of_chunk(cls, plan: RowPlan, k: int, structures: list[StructureLayout], ids: np.ndarray,
                 normals: np.ndarray) -> ChunkWork:
        start, stop = plan.chunk(k)
        return cls(k, start, stop, tuple((structures[gb], str(ids[gb]), int(normals[gb]), lo, hi)
                                         for gb, lo, hi in plan.gb_slices(start, stop)))


GROUP_ROWS = 1024
"""Rows of a structure cut into domains given to the SOAP code at a time, each with its own
environment: rows are ordered by cells of about 2 r_cut inside a domain, so 1,024 of them are a
compact patch whose environment is a few times its own atoms, not the domain's."""

TASK_MEMORY_SHARE = 0.25
"""Share of a worker's memory limit its SOAP tasks may use together when no ``task_memory`` is given
(split between its threads): a worker holds about 0.4 GiB before any task, and pauses at 80% of
its limit."""

DEFAULT_TASK_MEMORY = 1 << 30
"""bytes, the SOAP task budget on a worker with no memory limit."""


def _this_worker():
    """The Dask worker running this task, or None outside one."""
    from distributed import get_worker

    try:
        return get_worker()
    except ValueError:
        return None


def task_budget(task_memory: int | None, worker=None) -> int:
    """Bytes one SOAP task may use on ``worker``: ``task_memory``, else ``TASK_MEMORY_SHARE`` of the
    worker's memory limit over its threads (``DEFAULT_TASK_MEMORY`` without a worker or a limit)."""
    if task_memory is not None:
        return task_memory
    limit = worker.memory_manager.memory_limit if worker is not None else None
    return int(limit * TASK_MEMORY_SHARE / worker.state.nthreads) if limit else DEFAULT_TASK_MEMORY


def soap_chunk(work: ChunkWork, store: str, storage_options: dict | None, params: SoapStageParams,
               species: list[str], task_memory: int | None = None) -> dict:
    """Worker task: compute and write ``soap`` chunk ``work.k`` (its rows only), then flag it done.
    ``species``: the store's (its ``species`` attribute, read once by the driver); ``task_memory``:
    bytes the SOAP code may use (``task_budget``), whatever the structure's size or cell."""
    t0 = time.perf_counter()
    k, start, stop = work.k, work.start, work.stop
    worker = _this_worker()
    budget = task_budget(task_memory, worker)
    group = StoreArrays(store, "r+", storage_options)
    sites = group[SITE][start:stop]
    out = np.empty((stop - start, group["soap"].shape[1]), np.float32)
    width = crop_width(params.soap, species)
    kernel = 0.0
    for layout, name, normal, lo, hi in work.gbs:
        step = hi - lo if np.prod(layout.grid) == 1 else GROUP_ROWS  # a cut structure: compact groups of rows
        cache = {}
        for g in range(lo, hi, step):
            structure, centres = centre_environment(group, layout, sites[g - start:min(g + step, hi) - start], width,
                                                    name, cache)
            rows, cpu = soap_rows(structure, centres, params.soap, species, normal, budget)
            out[g - start:g - start + len(rows)] = rows
            kernel += cpu
            del structure, rows
    unit, norms = unit_rows(out)
    group["soap"][start:stop] = unit
    group[LAE_SOAP_NORM][start:stop] = norms
    gbs = np.array([layout.gb for layout, *_ in work.gbs], np.int64)
    within, sums = gb_row_sums(unit, start, np.array([lo for *_, lo, _ in work.gbs] + [stop], np.int64))
    write_asr_partial(group, k, gbs[within], sums)
    group[PROGRESS_SOAP_CPU][k] = kernel
    group[PROGRESS_SOAP][k] = 1  # last: the chunk is done only once its data are written
    peak = peak_rss_bytes()
    release_free_memory()
    return {"k": k, "rows": stop - start, "kernel_cpu_s": kernel, "wall_s": time.perf_counter() - t0,
            "worker": worker.address if worker is not None else "local", "peak_rss": peak}


def normalised_params(params: dict) -> dict:
    """Stage parameters as recorded, with the defaults of parameters added since (a store or bundle
    from before ``soap.backend`` existed used dscribe)."""
    try:
        return SoapStageParams.model_validate(params).model_dump(mode="json")
    except ValueError:
        return dict(params)


def _describe(backend: dict) -> str:
    """'featomic 0.6.7 (rows n1<=n2)' from a store's ``soap_backend`` record."""
    layout = backend.get("layout", "full n1 × n2" if backend["name"] == "featomic" else None)
    return f"{backend['name']} {backend['version']}" + (f" (rows {layout})" if layout else "")


def check_same_job(group: zarr.Group, store: str, inputs: list[dict] | None, params: SoapStageParams):
    """Refuse to mix a store with other inputs (unless ``inputs`` is None: not read by this run) or
    parameters (the SOAP backend and its version included)."""
    old_params = group.attrs.get("params")
    if old_params is not None:
        if normalised_params(old_params) != params.model_dump(mode="json"):
            raise StoreError(f"{store}: made with other read/select/SOAP parameters; use a new store")
    old_backend, backend = group.attrs.get("soap_backend"), backend_version(params.soap)
    problem = old_featomic_rows(old_backend)
    if problem and backend["name"] == "featomic":
        raise StoreError(f"{store}: {problem}; use a new store")
    if old_backend is not None and old_backend != backend:
        raise StoreError(f"{store}: SOAP rows from {_describe(old_backend)}, this run would use {_describe(backend)}; "
                         "use a new store")
    old_inputs = group.attrs.get("inputs")
    if old_inputs is not None and inputs is not None:
        old = {(r["id"], r["sha256"]) for r in old_inputs}
        new = {(r["id"], r["sha256"]) for r in inputs}
        if old != new:
            changed = sorted({i for i, _ in old ^ new})
            raise StoreError(f"{store}: made from other input files (differ: {changed[:5]}); use a new store")


def chunk_failure(work: ChunkWork, why: str) -> dict:
    """A failed chunk as recorded in the store's ``failures``: the chunk, its rows and structures."""
    names = [name for _, name, *_ in work.gbs]
    return {"chunk": work.k, "structures": names,
            "error": f"soap chunk {work.k} (rows {work.start}–{work.stop}; {', '.join(names)}): {why}"}


def run_soap_stage(client, store: str, inputs: list[dict], params: SoapStageParams,
                   storage_options: dict | None = None, species: list[str] | None = None,
                   task_memory: int | None = None) -> SoapReport:
    """Select and compute SOAP for ``inputs`` (records from ``describe_inputs``) into ``store``.

    Resumes: a finished selection is reused and only unflagged chunks are computed. With
    ``species`` (a model bundle's), structures holding other elements fail by name and the
    SOAP vectors use exactly those species. ``task_memory``: bytes one SOAP task may use
    (default: a share of each worker's memory limit, ``task_budget``). A chunk whose task
    fails (its worker killed every time, say) is recorded in the store's ``failures`` with
    its structures and the reason; the other chunks finish, and a rerun computes the rest.
    """
    import dask.bag as db

    from gbdist.stages.client import n_worker_threads

    report = SoapReport(worker_threads=n_worker_threads(client))
    group = open_group(store, mode="a", storage_options=storage_options)
    check_same_job(group, store, inputs, params)
    group.attrs.update({"inputs": inputs, "params": params.model_dump(mode="json"),
                        "soap_backend": backend_version(params.soap)})

    if not stage_done(group, "select"):
        t0 = time.perf_counter()
        failures = _ingest_all(client, store, storage_options, inputs, params, species, group)
        group.attrs["failures"] = failures
        report.select_wall_s = time.perf_counter() - t0
        mark_stage(group, "select", wall_s=report.select_wall_s)
    require_structures(group, store)
    report.failures = [f for f in group.attrs.get("failures", []) if "chunk" not in f]  # this run redoes the chunks

    plan = RowPlan(group[GB_OFFSET][:], params.chunk_rows)
    report.n_gb, report.n_lae = len(plan.offsets) - 1, plan.n_rows
    report.n_features, report.chunks_total = group["soap"].shape[1], plan.n_chunks
    report.selected_share = plan.n_rows / max(int(group[GB_N_ATOMS][:].sum()), 1)
    if GB_LATTICE in group:
        kinds = Counter(f"{lat} · {rule}" for lat, rule in zip(group[GB_LATTICE][:], group[GB_RULE][:]))
        report.structures = dict(sorted(kinds.items()))
    by_id = {r["id"]: r["path"] for r in inputs}
    sources = np.array([by_id[i] for i in group[GB_ID][:].tolist()], dtype=str)
    if not np.array_equal(sources, group[GB_SOURCE][:]):  # same files, moved since
        write_array(group, GB_SOURCE, sources, ["gb"])
    todo = np.flatnonzero(group[PROGRESS_SOAP][:] == 0).tolist()
    if todo:
        import dask

        t0 = time.perf_counter()
        normals = group[GB_NORMAL][:]
        names = [Path(source).name for source in sources]
        structures = layouts(group)
        work = [ChunkWork.of_chunk(plan, k, structures, names, normals) for k in todo]
        # last chunk first: the first rows are then the most recently written, the ones a page cache
        # smaller than the store still holds when the lae stage's discovery reads them in row order
        with dask.annotate(priority=lambda key: key[1]):  # key (name, partition) → the later, the sooner
            bag = db.from_sequence(work, partition_size=1).map(soap_chunk, store, storage_options, params,
                                                                 list(group.attrs["species"]), task_memory)
        futures = client.compute(bag.to_delayed())
        work_of = {f.key: w for f, w in zip(futures, work)}
        for f in as_completed_with_progress(futures, "soap"):
            try:
                results = f.result()
            except Exception as err:  # a crashed or killed task: report it, keep the others going
                why = task_error(client, err) or f"{type(err).__name__}: {err}"
                results = [{"k": work_of[f.key].k, "error": why}]
            for r in results:
                if "error" in r:
                    report.failures.append(chunk_failure(work_of[f.key], r["error"]))
                else:
                    report.chunks_computed += 1
                    report.kernel_cpu_s += r["kernel_cpu_s"]
                    report.peak_rss[r["worker"]] = max(report.peak_rss.get(r["worker"], 0), r["peak_rss"])
        report.soap_wall_s = time.perf_counter() - t0
    if group.attrs.get("failures") != report.failures:  # this run's chunk failures, none left from older runs
        group.attrs["failures"] = report.failures
    if not stage_done(group, "soap") and group[PROGRESS_SOAP][:].all():
        mark_stage(group, "soap", wall_s=report.soap_wall_s, n_rows=plan.n_rows,
                   kernel_cpu_s=float(group[PROGRESS_SOAP_CPU][:].sum()))
    return report
