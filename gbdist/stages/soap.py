"""The select + SOAP stage driver: structures → LAE plan → SOAP rows in the store, over Dask.

1. Every input file is read and its GB region selected on the workers (a Dask bag);
   the counts give every row offset, written to the store with the LAE atom ids and CNA.
2. The row space is cut at ``soap`` chunk boundaries; one task per chunk computes exactly
   its rows (reading each GB it touches) and writes its chunk, its norms, its per-GB sums
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
from pydantic import BaseModel, ConfigDict, Field

from gbdist.compute.asr import gb_row_sums
from gbdist.compute.select import SelectParams, select_gb_region
from gbdist.compute.soap import (
    SoapParams,
    backend_version,
    n_features,
    old_featomic_rows,
    soap_rows,
    species_symbols,
    unit_rows,
)
from gbdist.errors import GbdistError, StoreError
from gbdist.io import ReadParams, read_structure
from gbdist.stages.progress import as_completed_with_progress
from gbdist.stages.rss import peak_rss_bytes, release_free_memory
from gbdist.stages.watchdog import task_error
from gbdist.store.schema import (
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

log = logging.getLogger(__name__)


class SoapStageParams(BaseModel):
    """Everything that decides the store's rows and values (recorded in the store)."""

    model_config = ConfigDict(extra="forbid")
    read: ReadParams = ReadParams()
    select: SelectParams = SelectParams()
    soap: SoapParams = SoapParams()
    chunk_rows: int = Field(4096, ge=16, description="LAE rows per soap chunk (one task each)")


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


def select_file(path: str, read: ReadParams, select: SelectParams) -> dict:
    """Worker task: read one file and select its LAEs; errors come back as data."""
    try:
        structure = read_structure(path, read)
        sel = select_gb_region(structure, select)
    except GbdistError as err:
        return {"path": path, "error": str(err)}
    return {
        "path": path,
        "n_atoms": len(structure),
        "normal": sel.normal,
        "extent": sel.extent,
        "rule": sel.rule,
        "lattice": sel.lattice,
        "lattice_constant": sel.lattice_constant,
        "host": sel.host,
        "thickness": sel.thickness,
        "atom": structure.ids[sel.centres],
        "cna": sel.types,
        "species": species_symbols(structure.numbers),
    }


def write_plan(group: zarr.Group, inputs: list[dict], selected: list[dict], chunk_rows: int,
               soap: SoapParams, species: list[str] | None = None) -> RowPlan:
    """Write the LAE plan (gb/*, lae/*) and create the empty ``soap`` arrays; returns the plan.

    ``species`` fixes the SOAP species (and so the feature layout), e.g. a model bundle's;
    by default they are those of the selected structures.
    """
    counts = np.array([len(s["atom"]) for s in selected], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    plan = RowPlan(offsets, chunk_rows)
    species = sorted(species) if species else sorted({sp for s in selected for sp in s["species"]})
    n_feat = n_features(soap, species)
    by_path = {rec["path"]: rec for rec in inputs}
    write_array(group, "gb/id", np.array([by_path[s["path"]]["id"] for s in selected], dtype=str), ["gb"])
    write_array(group, "gb/source", np.array([s["path"] for s in selected], dtype=str), ["gb"])
    write_array(group, "gb/offset", offsets, ["gb_edge"])
    write_array(group, "gb/n_atoms", np.array([s["n_atoms"] for s in selected], np.int32), ["gb"])
    write_array(group, "gb/normal", np.array([s["normal"] for s in selected], np.int8), ["gb"])
    write_array(group, "gb/extent", np.array([s["extent"] for s in selected], np.float64).reshape(-1, 2),
                ["gb", "bound"])
    for name, dtype in (("rule", str), ("lattice", str), ("lattice_constant", np.float64), ("host", str),
                        ("thickness", np.float64)):
        write_array(group, f"gb/{name}", np.array([s[name] for s in selected], dtype=dtype), ["gb"])
    rows = (chunk_rows,)
    write_array(group, "lae/gb", np.repeat(np.arange(len(selected), dtype=np.int32), counts), ["lae"], rows)
    write_array(group, "lae/atom", np.concatenate([s["atom"] for s in selected]).astype(np.int64), ["lae"], rows)
    write_array(group, "lae/cna", np.concatenate([s["cna"] for s in selected]).astype(np.int8), ["lae"], rows)
    n_rows, n_chunks = plan.n_rows, plan.n_chunks
    for name, dims, shape, chunks, dtype in (
        ("soap", ["lae", "feature"], (n_rows, n_feat), (chunk_rows, n_feat), np.float32),
        ("lae/soap_norm", ["lae"], (n_rows,), rows, np.float32),
        ("progress/soap", ["soap_chunk"], (n_chunks,), (1,), np.uint8),
        ("progress/soap_cpu", ["soap_chunk"], (n_chunks,), (1,), np.float64),
    ):
        create_store_array(group, name, shape=shape, chunks=chunks, dtype=dtype, fill_value=0, dimension_names=dims,
                           compressor=SOAP_COMPRESSOR if name == "soap" else None)
    create_asr_partials(group, plan, n_feat)
    group.attrs["species"] = species
    return plan


@dataclass(frozen=True)
class ChunkWork:
    """What a SOAP task needs to know of the store's plan for ``soap`` chunk k, made by the driver:
    rows [start, stop) and, for each GB with rows there, (GB position, source file, normal axis,
    first row, stop row). A task then reads no per-GB array whole, so its cost does not grow
    with the number of GBs in the store."""

    k: int
    start: int
    stop: int
    gbs: tuple[tuple[int, str, int, int, int], ...]

    @classmethod
    def of_chunk(cls, plan: RowPlan, k: int, sources: np.ndarray, normals: np.ndarray) -> ChunkWork:
        start, stop = plan.chunk(k)
        return cls(k, start, stop, tuple((gb, str(sources[gb]), int(normals[gb]), lo, hi)
                                         for gb, lo, hi in plan.gb_slices(start, stop)))


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
    atom_ids = group["lae/atom"][start:stop]
    out = np.empty((stop - start, group["soap"].shape[1]), np.float32)
    kernel = 0.0
    for _, source, normal, lo, hi in work.gbs:
        try:
            structure = read_structure(source, params.read)
        except GbdistError as err:
            return {"k": k, "error": str(err)}
        order = np.argsort(structure.ids)
        wanted = atom_ids[lo - start:hi - start]
        pos = np.searchsorted(structure.ids, wanted, sorter=order)
        centres = order[np.clip(pos, 0, len(order) - 1)]
        if not np.array_equal(structure.ids[centres], wanted):
            return {"k": k, "error": f"{source}: atom ids differ from the store's plan (file changed?)"}
        rows, cpu = soap_rows(structure, centres, params.soap, species, normal, budget)
        out[lo - start:hi - start] = rows
        kernel += cpu
        del structure, rows
    unit, norms = unit_rows(out)
    group["soap"][start:stop] = unit
    group["lae/soap_norm"][start:stop] = norms
    gbs = np.array([gb for gb, *_ in work.gbs], np.int64)
    within, sums = gb_row_sums(unit, start, np.array([lo for *_, lo, _ in work.gbs] + [stop], np.int64))
    write_asr_partial(group, k, gbs[within], sums)
    group["progress/soap_cpu"][k] = kernel
    group["progress/soap"][k] = 1  # last: the chunk is done only once its data are written
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


def _foreign_species(results: list[dict], species: list[str]) -> None:
    """Turn each selected structure with an element outside ``species`` into a failure, in place."""
    for i, r in enumerate(results):
        extra = sorted(set(r.get("species", [])) - set(species))
        if "error" not in r and extra:
            results[i] = {"path": r["path"], "error": f"{Path(r['path']).name}: element(s) {', '.join(extra)} "
                                                      f"not among the model bundle's species ({', '.join(species)})"}


def _select_all(client, paths: list[str], params: SoapStageParams) -> list[dict]:
    """Read and select every file on the workers (one bag partition per file, so a file whose task
    kills its worker fails by name and the others finish); results in the order of ``paths``."""
    import dask.bag as db

    bag = db.from_sequence(paths, partition_size=1)
    parts = client.compute(bag.map(select_file, params.read, params.select).to_delayed())
    path_of = {f.key: path for f, path in zip(parts, paths)}
    results = []
    for f in as_completed_with_progress(parts, "select"):
        try:
            results.extend(f.result())
        except Exception as err:
            why = task_error(client, err)
            if why is None:
                raise
            results.append({"path": path_of[f.key], "error": f"{Path(path_of[f.key]).name}: {why}"})
    order = {p: i for i, p in enumerate(paths)}
    return sorted(results, key=lambda r: order[r["path"]])


def chunk_failure(work: ChunkWork, why: str) -> dict:
    """A failed chunk as recorded in the store's ``failures``: the chunk, its rows and structures."""
    names = [Path(source).name for _, source, *_ in work.gbs]
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
        results = _select_all(client, [r["path"] for r in inputs], params)
        if species:
            _foreign_species(results, species)
        selected = [r for r in results if "error" not in r]
        failures = [{"path": r["path"], "error": r["error"]} for r in results if "error" in r]
        if not selected:
            group.attrs["failures"] = failures
            raise GbdistError("no structure could be read and selected:\n  "
                              + "\n  ".join(f["error"] for f in failures))
        write_plan(group, inputs, selected, params.chunk_rows, params.soap, species)
        group.attrs["failures"] = failures
        report.select_wall_s = time.perf_counter() - t0
        mark_stage(group, "select", wall_s=report.select_wall_s)
    report.failures = [f for f in group.attrs.get("failures", []) if "chunk" not in f]  # this run redoes the chunks

    plan = RowPlan(group["gb/offset"][:], params.chunk_rows)
    report.n_gb, report.n_lae = len(plan.offsets) - 1, plan.n_rows
    report.n_features, report.chunks_total = group["soap"].shape[1], plan.n_chunks
    report.selected_share = plan.n_rows / max(int(group["gb/n_atoms"][:].sum()), 1)
    if "gb/lattice" in group:
        kinds = Counter(f"{lat} · {rule}" for lat, rule in zip(group["gb/lattice"][:], group["gb/rule"][:]))
        report.structures = dict(sorted(kinds.items()))
    by_id = {r["id"]: r["path"] for r in inputs}
    sources = np.array([by_id[i] for i in group["gb/id"][:].tolist()], dtype=str)
    if not np.array_equal(sources, group["gb/source"][:]):  # same files, moved since
        write_array(group, "gb/source", sources, ["gb"])
    todo = np.flatnonzero(group["progress/soap"][:] == 0).tolist()
    if todo:
        import dask

        t0 = time.perf_counter()
        normals = group["gb/normal"][:]
        work = [ChunkWork.of_chunk(plan, k, sources, normals) for k in todo]
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
    if not stage_done(group, "soap") and group["progress/soap"][:].all():
        mark_stage(group, "soap", wall_s=report.soap_wall_s, n_rows=plan.n_rows,
                   kernel_cpu_s=float(group["progress/soap_cpu"][:].sum()))
    return report
