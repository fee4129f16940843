"""``gbdist bench``: how fast each stage runs and how its cost grows, measured in one run.

On the Olmsted survey (or any folder of dumps with an Olmsted-style labels table):

- parse: dump text parsed per CPU second, decompression excluded (MB/s per core);
- the whole data path (dumps → select → soap → asr → lae → LER) on one cluster, stage by
  stage, each with wall, worker + driver CPU, rows/s and peak RSS per worker; then learn
  (xgboost.dask on the ASR, energy);
- the same data path with the featomic SOAP backend (``olmsted_total_s_featomic``);
- full reads of ``soap`` each of asr and lae makes, as the stages count them;
- SOAP efficiency two ways: the stage's own kernel CPU-s ÷ (wall × workers), and the bare
  kernel on a sample of the same centres in this process, scaled to all rows, per backend;
- the 2-worker speed-up against 1 worker on the same subset of dumps, and SOAP rows/s per
  core of each backend on those dumps (medians of interleaved repeats);
- the unique-LAE stage against a NumPy brute-force leader pass over the same rows, and the
  search alone (rows in memory, one thread) against the same pass at two eps;
- optionally one huge structure (``huge_atoms``): a dump tiled along its periodic axes to 10⁷
  atoms or more, through soap → asr → lae on a cluster of its own, with peak RSS per worker, SOAP
  rows/s per core against the Olmsted run's, and the atoms parsed from files ÷ the structure's
  atoms (1: read once);
- optionally (``site_fit``) EMT per-atom energies of every input atom and a per-atom model on
  every LAE row, in memory and with external memory, and (``site_scale``) the external-memory
  fit with every training row dealt N times;
- optionally a synthetic scale-up: every dump replicated with small random displacements,
  through soap → asr → lae → learn, to show peak RSS per worker and each stage's growth
  (wall at scale ÷ wall at 1×) against data size.

Writes ``bench.json`` and ``bench.md`` in the output folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import psutil
from pydantic import BaseModel, ConfigDict, Field

from gbdist.compute.domains import DOMAIN_ATOMS, SPLIT_ATOMS
from gbdist.compute.select import SelectParams
from gbdist.io import ReadParams, expand_inputs
from gbdist.io.files import open_bytes, structure_id
from gbdist.io.lammps import parse_lammps_dump
from gbdist.rss import peak_rss_bytes, reset_peak_rss
from gbdist.stages.client import ClusterConfig, dask_client
from gbdist.stages.lae import run_lae_stage
from gbdist.stages.progress import as_completed_with_progress, with_progress
from gbdist.store.schema import GB_ID, GB_NORMAL, GB_OFFSET, PROGRESS_SOAP
from gbdist.workflows.job import JobConfig, LaeParams, run_job

log = logging.getLogger(__name__)


class BenchConfig(BaseModel):
    """What ``gbdist bench`` measures (a YAML file in ``jobs/bench-*.yaml``, or the defaults)."""

    model_config = ConfigDict(extra="forbid")
    inputs: list[str] = Field(default_factory=lambda: ["../shared/data/olmsted/dumps/*.out.xz"])
    read: ReadParams = Field(ReadParams(element="Ni"), description="how to read the inputs (the default inputs, "
                             "the Olmsted survey, are all Ni)")
    select: SelectParams = Field(SelectParams(type_column="c_cna", type_convention="lammps"),
                                 description="how to select the LAEs (the default inputs' own LAMMPS CNA column)")
    labels: str = "olmsted"
    workers: int = Field(2, ge=1)
    memory_limit: str = "6GiB"
    speedup_dumps: int = Field(48, ge=2, description="dumps of the 1-vs-2-worker comparison")
    speedup_repeats: int = Field(3, ge=1, description="interleaved 1- and 2-worker runs; medians compared")
    kernel_rows: int = Field(100_000, ge=1, description="SOAP rows of the in-memory leader-search comparison")
    kernel_fine_eps: float = Field(0.016, gt=0, description="a finer eps (more leaders) for that comparison")
    bare_dumps: int = Field(12, ge=1, description="dumps whose centres the bare SOAP kernels run")
    featomic: bool = Field(True, description="also measure the featomic SOAP backend (needs gbdist[featomic])")
    featomic_eps: float | None = Field(None, gt=0, lt=2, description="eps of featomic's data path (None: the job "
                                       "default); its vectors need a larger eps for a count of unique LAEs like "
                                       "dscribe's. The count at the default eps is then measured too.")
    predict_dumps: int = Field(88, ge=1, description="last dumps predicted with the learnt bundle (SOAP included)")
    site_fit: bool = Field(True, description="EMT site energies of the inputs and a per-atom model on every LAE row")
    site_scale: int = Field(0, ge=0, description="with site_fit, also the external-memory fit with every training "
                            "row dealt this many times (a scale-up read from the same store); 0 skips it")
    scale: int = Field(0, ge=0, description="synthetic scale-up factor; 0 skips it")
    huge_atoms: int = Field(0, ge=0, description="atoms of one structure tiled from a dump along its periodic "
                            "axes (its boundary plane) and run through soap → asr → lae; 0 skips it")
    huge_source: str | None = Field(None, description="the dump tiled (default: the first input)")
    split_atoms: int = Field(SPLIT_ATOMS, ge=1, description="atoms above which a structure is cut into domains")
    domain_atoms: int = Field(DOMAIN_ATOMS, ge=1, description="atoms per domain aimed at when one is cut")
    displacement: float = Field(0.02, ge=0, description="Å, std of the replicas' random displacements")


@dataclass
class StageFigure:
    """One stage of one run: wall s, CPU s (workers + driver), rows, peak RSS per worker (GiB)."""

    stage: str
    wall_s: float
    cpu_s: float
    rows: int
    peak_rss_gib_per_worker: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s > 0 else float("nan")


def load_bench(path: str | Path | None) -> BenchConfig:
    """A bench file (YAML, inputs relative to its folder), or the defaults when ``path`` is None."""
    from gbdist.io.config_files import read_mapping, validate

    if path is None:
        return BenchConfig()
    path = Path(path)
    config = validate(BenchConfig, read_mapping(path, "bench file"), path, "bench file")
    base = path.resolve().parent
    config.inputs = [i if Path(i).is_absolute() else os.path.normpath(base / i) for i in config.inputs]
    if config.huge_source and not Path(config.huge_source).is_absolute():
        config.huge_source = os.path.normpath(base / config.huge_source)
    if config.labels != "olmsted" and not Path(config.labels).is_absolute():
        config.labels = os.path.normpath(base / config.labels)
    return config


# ---------------------------------------------------------------- process accounting
def _cpu_s() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


class _Meter:
    """Wall, CPU (workers + driver) and peak RSS per worker of one stage."""

    def __init__(self, client):
        self.client = client

    def __enter__(self):
        self.client.run(reset_peak_rss)
        self.cpu0 = sum(self.client.run(_cpu_s).values()) + _cpu_s()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self.cpu = sum(self.client.run(_cpu_s).values()) + _cpu_s() - self.cpu0
        self.peak = max(self.client.run(peak_rss_bytes).values()) / 2**30

    def figure(self, stage: str, rows: int) -> StageFigure:
        return StageFigure(stage, self.wall, self.cpu, rows, self.peak)


# ---------------------------------------------------------------- parts
def parse_rate(files: list[str], read: ReadParams) -> dict:
    """Dump text parsed per CPU second of this process, decompression excluded (MB/s per core)."""
    text_bytes, cpu = 0, 0.0
    for path in with_progress(files, "parse"):
        data = open_bytes(path)
        t0 = time.process_time()
        parse_lammps_dump(data, Path(path).name, read.timestep, read.element, read.type_map)
        cpu += time.process_time() - t0
        text_bytes += len(data)
    return {"files": len(files), "text_mb": text_bytes / 1e6, "cpu_s": cpu, "mb_s_per_core": text_bytes / 1e6 / cpu}


def data_path(client, store: Path, files: list[str], workers: int, read: ReadParams, select: SelectParams,
              backend: str = "dscribe", eps: float | None = None,
              domains: dict | None = None) -> tuple[list[StageFigure], dict]:
    """soap (with select), asr and lae (at ``eps``, else the job default) as separate runs on one
    cluster, each metered; the info holds the full reads of ``soap`` that asr and lae counted
    (``passes_asr``, ``passes_lae``)."""
    from gbdist.store.schema import eps_key, open_group

    figures, info = [], {}
    cluster = ClusterConfig(scheduler=client.scheduler.address)
    lae = {"eps": eps} if eps is not None else {}
    for stage in ("soap", "asr", "lae"):
        job = JobConfig(store=str(store), inputs=files, read=read, select=select, cluster=cluster, stages=[stage],
                        soap={"backend": backend}, lae=lae, **(domains or {}))
        with _Meter(client) as meter:
            report = run_job(job)
        if stage == "soap":
            soap = report.soap
            if soap.failures:
                raise RuntimeError(f"{len(soap.failures)} dumps failed, e.g. {soap.failures[0]['error']}")
            info.update(n_gb=soap.n_gb, n_lae=soap.n_lae, select_s=soap.select_wall_s, soap_s=soap.soap_wall_s,
                        kernel_cpu_s=soap.kernel_cpu_s, soap_efficiency=soap.efficiency, workers=workers)
            figures.append(StageFigure("select", soap.select_wall_s, float("nan"), soap.n_lae, float("nan")))
        if stage == "lae":
            info.update(lae_s=report.lae.wall_s, n_unique=report.lae.n_unique, eps=report.lae.eps)
        figures.append(meter.figure(stage, info["n_lae"]))
    group = open_group(str(store))
    info.update(passes_asr=group.attrs["stages"]["asr"]["soap_passes"],
                passes_lae=group.attrs["lae_runs"][eps_key(info["eps"])]["soap_passes"])
    return figures, info


def _read_chunk(k: int, store: str) -> int:
    """Worker task: read soap chunk k through Zarr; its size in bytes."""
    import zarr

    soap = zarr.open_group(store, mode="r")["soap"]
    return soap[k * soap.chunks[0]:(k + 1) * soap.chunks[0]].nbytes


def soap_read_pass(client, store: Path) -> dict:
    """One read of the whole ``soap`` array on the workers, a task per chunk: the floor of
    any stage that streams the SOAP rows once."""
    from gbdist.store.schema import open_group

    n_chunks = open_group(str(store))[PROGRESS_SOAP].shape[0]
    t0 = time.perf_counter()
    futures = client.map(_read_chunk, range(n_chunks), store=str(store), pure=False)
    nbytes = sum(f.result() for f in as_completed_with_progress(futures, "soap read"))
    return {"wall_s": time.perf_counter() - t0, "gb": nbytes / 1e9}


def learn_stage(client, store: Path, labels, out: Path) -> StageFigure:
    """xgboost.dask energy model on the ASR (CV on a worker, then the distributed fit), as ``gbdist learn``."""
    from gbdist.store.schema import open_group
    from gbdist.workflows.learning import LearnOptions, train_store

    gb_ids = set(open_group(str(store))[GB_ID][:].tolist())
    here = ClusterConfig(scheduler=client.scheduler.address)
    options = LearnOptions(properties=["energy"], representations=["ASR"])
    with _Meter(client) as meter:  # labels: a frame indexed by id, cut to the store's GBs
        (record,) = train_store(str(store), labels[labels.index.isin(gb_ids)], out, options, here)
    return meter.figure("learn", record["n_train"])


SITE_COLUMN = "bench_emt_excess"
"""The per-atom column the bench's EMT site energies go to."""


def site_stages(client, store: Path, scale: int = 0) -> tuple[list[StageFigure], dict[str, int]]:
    """EMT excess energies of every atom of the store (``gbdist site-energy --potential emt``), then
    one per-atom model of them on every LAE row (a fifth of the boundaries stop the rounds), as
    ``gbdist site-model`` fits on a split's training boundaries: with xgboost.dask (rows in the
    workers' memory), then with the workers streaming their chunks (external memory), then, if
    ``scale`` > 1, external memory with every training row dealt ``scale`` times
    (``site_fit_external_scaled``: the same rows read from the store again, so that XGBoost's pages
    and per-row state grow ``scale``-fold without a store that size on disk). Returns the figures
    and each fit's boosted rounds."""
    import numpy as np

    from gbdist.learning.sites import SiteModelParams, SoapRows, read_site_rows, train_site_model
    from gbdist.stages.sites import run_site_energy_stage
    from gbdist.store.schema import open_group

    with _Meter(client) as meter:
        report = run_site_energy_stage(client, str(store), "emt", SITE_COLUMN)
    energies = meter.figure("site_energy", report.atoms)
    rows = read_site_rows(open_group(str(store)), str(store), SITE_COLUMN)
    known = np.isfinite(rows.value)
    everything = np.arange(len(rows.offsets) - 1)
    figures, rounds = [energies], {}
    for memory, stage in (("workers", "site_fit"), ("external", "site_fit_external")):
        client.restart()  # fresh workers: a peak is this fit's, not what an earlier stage left behind
        with _Meter(client) as meter:
            booster = train_site_model(client, SoapRows(str(store)), rows, everything, SiteModelParams(memory=memory))
        rounds[stage] = booster.num_boosted_rounds()
        log.info("bench: site model (%s memory) on %d rows, %d rounds", memory, len(rows.gb), rounds[stage])
        figures.append(meter.figure(stage, int(known.sum())))
    if scale > 1:
        client.restart()
        with _Meter(client) as meter:
            booster = train_site_model(client, SoapRows(str(store)), rows, everything, SiteModelParams(memory="external"),
                                       repeat=scale)
        rounds["site_fit_external_scaled"] = booster.num_boosted_rounds()
        log.info("bench: site model (external memory, rows dealt %d times), %d rounds", scale, booster.num_boosted_rounds())
        figures.append(meter.figure("site_fit_external_scaled", scale * int(known.sum())))
    return figures, rounds


def predict_stage(client, bundle: Path, files: list[str], out: Path) -> dict:
    """``gbdist predict`` of ``files`` with ``bundle`` on this cluster, from nothing (SOAP included)."""
    from gbdist.workflows.predict import predict_structures

    shutil.rmtree(out, ignore_errors=True)
    with _Meter(client) as meter:
        result = predict_structures(bundle, files, out, None, ClusterConfig(scheduler=client.scheduler.address))
    rows = int(result.predictions["n_lae"].sum())
    return asdict(meter.figure("predict", rows)) | {"rows_per_s": rows / meter.wall, "dumps": len(files),
                                                    "candidates": len(result.candidates)}


def bare_kernel(store: Path, n_gb: int, backend: str = "dscribe") -> dict:
    """A SOAP kernel alone, in this process, on the centres of the store's first ``n_gb`` GBs."""
    from gbdist.compute.soap import SoapParams, soap_rows
    from gbdist.store.schema import open_group
    from gbdist.store.structures import SITE, layout_of, read_structure

    group = open_group(str(store))
    params = SoapParams(**(group.attrs["params"]["soap"] | {"backend": backend}))
    offset, sites = group[GB_OFFSET][: n_gb + 1], group[SITE][:]
    normals, species = group[GB_NORMAL][:n_gb], list(group.attrs["species"])
    rows, cpu = 0, 0.0
    for gb in with_progress(range(n_gb), f"bare {backend}"):
        layout = layout_of(group, gb)
        structure = read_structure(group, layout, f"gb {gb}")
        centres = sites[offset[gb]:offset[gb + 1]] - layout.atom_start
        _, kernel = soap_rows(structure, centres, params, species, int(normals[gb]))
        rows += len(centres)
        cpu += kernel
    return {"rows": rows, "cpu_s": cpu, "rows_per_cpu_s": rows / cpu}


def numpy_greedy(blocks, seed: np.ndarray, eps: float) -> tuple[np.ndarray, int]:
    """Brute-force greedy leaders in NumPy: every row of the ``blocks`` (an iterable of (n, d)
    float32 arrays), in order, against every leader so far, starting from the (k, d) ``seed``
    rows. Returns (labels, leader count)."""
    from gbdist.compute.leaders import similarity_threshold

    thr = similarity_threshold(eps)
    leaders = np.zeros((1024 + len(seed), seed.shape[1]), np.float32)
    leaders[:len(seed)], n = seed, len(seed)
    labels = []
    for block in blocks:
        out = np.empty(len(block), np.int32)
        for i, row in enumerate(block):
            sims = leaders[:n] @ row
            best = int(np.argmax(sims))
            if sims[best] < thr:
                if n == len(leaders):
                    leaders = np.vstack([leaders, np.zeros_like(leaders)])
                leaders[n], best, n = row, n, n + 1
            out[i] = best
        labels.append(out)
    return np.concatenate(labels) if labels else np.zeros(0, np.int32), n


def _store_seed(group) -> np.ndarray:
    """The store's seeds (k, n_feat), as the lae stage computes them."""
    from gbdist.compute.soap import SoapParams
    from gbdist.stages.lae import crystal_seeds, seed_soaps

    return seed_soaps(crystal_seeds(group), SoapParams(**group.attrs["params"]["soap"]), list(group.attrs["species"]))


def numpy_leader_pass(store: Path) -> dict:
    """Brute-force greedy leaders in NumPy at the store's eps, reading the rows chunk by chunk
    from the store (as the stage does)."""
    from gbdist.store.schema import chosen_eps, open_group

    group = open_group(str(store))
    eps = chosen_eps(group)
    soap, seed = group["soap"], _store_seed(group)
    step = soap.chunks[0]
    t0 = time.perf_counter()
    blocks = (soap[start:start + step] for start in with_progress(range(0, soap.shape[0], step), "numpy leaders"))
    _, n = numpy_greedy(blocks, seed, eps)
    return {"eps": eps, "wall_s": time.perf_counter() - t0, "n_unique": n}


def leader_kernels(store: Path, n_rows: int, fine_eps: float) -> dict:
    """The search alone, without the store: the first ``n_rows`` SOAP rows in memory, one
    thread. gbdist's path (``greedy_leaders`` then ``assign_to_leaders``, FAISS) against
    ``numpy_greedy``, at the store's eps and at ``fine_eps``: {eps: figures}."""
    import faiss
    from threadpoolctl import threadpool_limits

    from gbdist.compute.leaders import assign_to_leaders, greedy_leaders
    from gbdist.store.schema import chosen_eps, open_group

    group = open_group(str(store))
    rows, seed = group["soap"][:n_rows], _store_seed(group)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    out = {}
    try:
        with threadpool_limits(1):
            for eps in (chosen_eps(group), fine_eps):
                t0 = time.perf_counter()
                leaders = np.vstack([seed, rows[greedy_leaders(rows, eps, seed)]])
                assign_to_leaders(rows, leaders)
                gbdist_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                _, n = numpy_greedy([rows], seed, eps)
                numpy_s = time.perf_counter() - t0
                out[f"{eps:.4f}"] = {"rows": len(rows), "n_unique": len(leaders), "n_unique_numpy": n,
                                     "gbdist_s": gbdist_s, "numpy_s": numpy_s, "ratio": numpy_s / gbdist_s}
    finally:
        faiss.omp_set_num_threads(threads)
    return out


def speedup(files: list[str], out: Path, memory_limit: str, repeats: int, featomic: bool, read: ReadParams,
            select: SelectParams) -> dict:
    """SOAP stage wall with 1 and with 2 workers (dscribe), and with 2 workers and featomic, on
    the same dumps (fresh stores), interleaved ``repeats`` times. Returns the ratio of the
    median 1- and 2-worker walls and each backend's SOAP rows/s per core (2 workers, median)."""
    runs = [("dscribe", 1), ("dscribe", 2)] + ([("featomic", 2)] if featomic else [])
    walls: dict[tuple[str, int], list[float]] = {run: [] for run in runs}
    rows = 0
    for _ in range(repeats):
        for backend, n in runs:
            cluster = ClusterConfig(workers=n, memory_limit=memory_limit)
            store = out / f"speedup-{backend}-{n}w.zarr"
            shutil.rmtree(store, ignore_errors=True)
            job = JobConfig(store=str(store), inputs=files, read=read, select=select, cluster=cluster, stages=["soap"],
                            soap={"backend": backend})
            soap = run_job(job).soap
            walls[(backend, n)].append(soap.soap_wall_s)
            rows = soap.n_lae
    median = {run: float(np.median(w)) for run, w in walls.items()}
    result = {"dumps": len(files), "rows": rows, "soap_s_1w": median[("dscribe", 1)],
              "soap_s_2w": median[("dscribe", 2)], "walls": {f"{b}-{n}w": w for (b, n), w in walls.items()},
              "speedup_2v1": median[("dscribe", 1)] / median[("dscribe", 2)],
              "rows_per_s_per_core": {b: rows / (median[(b, 2)] * 2) for b, n in runs if n == 2}}
    return result


def _replicate(path: str, copies: int, displacement: float, folder: str, read: ReadParams) -> list[str]:
    """Worker task: ``copies`` replicas of one dump (plain text ``<id>.r<k>.dump``), atoms
    displaced by N(0, displacement²) Å with a seed from the id; existing replicas are kept."""
    from gbdist.io.lammps import write_lammps_dump
    from gbdist.io.read import read_structure

    structure = read_structure(path, read)
    stem = structure_id(path)
    written = []
    for r in range(copies):
        target = Path(folder) / f"{stem}.r{r}.dump"
        if not target.exists():
            rng = np.random.default_rng([zlib.crc32(stem.encode()), r])
            moved = structure.positions + rng.normal(0, displacement, structure.positions.shape)
            write_lammps_dump(target, replace(structure, positions=moved))
        written.append(str(target))
    return written


def scale_up(client, files: list[str], labels, factor: int, displacement: float, out: Path, workers: int,
             read: ReadParams, select: SelectParams) -> dict:
    """soap → asr → lae → learn on ``factor`` displaced replicas of every dump."""
    import pandas as pd

    folder = out / f"replicas-{factor}x"
    folder.mkdir(parents=True, exist_ok=True)
    futures = client.map(_replicate, files, copies=factor, displacement=displacement, folder=str(folder), read=read)
    replicas = sorted(p for f in as_completed_with_progress(futures, "replicas") for p in f.result())
    ids = {structure_id(p): structure_id(p).rpartition(".r")[0] for p in replicas}  # replica → source id
    replica_labels = pd.DataFrame({"energy": labels.loc[list(ids.values()), "energy"].to_numpy()},
                                  index=pd.Index(list(ids), name="id"))
    figures, info = data_path(client, out / f"scale-{factor}x.zarr", replicas, workers, read, select)
    figures.append(learn_stage(client, out / f"scale-{factor}x.zarr", replica_labels, out / f"models-{factor}x"))
    return {"factor": factor, "figures": figures, **info}


def tiled_dump(source: str, read: ReadParams, atoms: int, folder: Path) -> tuple[Path, int]:
    """The structure of ``source`` tiled n × n along its two periodic axes (the boundary plane of a
    bicrystal open along its normal; n × n × n if all three are periodic) to at least ``atoms``
    atoms, written as a plain LAMMPS dump in ``folder`` (kept if it is there); (path, atoms)."""
    from gbdist.io.lammps import write_lammps_dump
    from gbdist.io.read import read_structure

    structure = read_structure(source, read)
    axes = np.flatnonzero(structure.pbc)
    n = int(np.ceil((atoms / len(structure)) ** (1 / max(len(axes), 1))))
    reps = np.ones(3, np.int64)
    reps[axes] = n
    total = len(structure) * int(reps.prod())
    path = folder / f"{structure_id(source)}.tiled{n}.dump"
    if path.exists():
        return path, total
    folder.mkdir(parents=True, exist_ok=True)
    shifts = np.array(np.meshgrid(*map(np.arange, reps), indexing="ij")).reshape(3, -1).T
    tiles = len(shifts)
    tiled = replace(structure, positions=(structure.positions[None] + (shifts @ structure.cell)[:, None]).reshape(-1, 3),
                    cell=structure.cell * reps[:, None], numbers=np.tile(structure.numbers, tiles),
                    ids=(np.arange(tiles)[:, None] * structure.ids.max() + structure.ids[None]).reshape(-1),
                    extras={k: np.tile(v, tiles) for k, v in structure.extras.items()})
    partial = path.with_suffix(".part")
    write_lammps_dump(partial, tiled)
    partial.rename(path)  # never a half-written dump under the final name
    return path, total


def huge_structure(client, config: BenchConfig, out: Path, workers: int) -> dict:
    """One structure of ``config.huge_atoms`` atoms or more through soap → asr → lae, metered like the
    Olmsted run, with the atoms every worker parsed from files (``gbdist.io.read.PARSED``)."""
    from gbdist.io.read import parsed_counts

    source = config.huge_source or expand_inputs(config.inputs)[0]
    path, n_atoms = tiled_dump(source, config.read, config.huge_atoms, out / "huge")
    before = client.run(parsed_counts)
    figures, info = data_path(client, out / "huge.zarr", [str(path)], workers, config.read, config.select,
                              domains={"split_atoms": config.split_atoms, "domain_atoms": config.domain_atoms})
    after = client.run(parsed_counts)
    parsed = sum(after[w]["atoms"] - before.get(w, {"atoms": 0})["atoms"] for w in after)
    from gbdist.store.schema import open_group
    from gbdist.store.structures import GRID

    grid = open_group(str(out / "huge.zarr"))[GRID][0].tolist()
    return {"file": str(path), "source": source, "n_atoms": n_atoms, "grid": grid, "figures": figures,
            "atoms_parsed": parsed, **info}


# ---------------------------------------------------------------- the run
def run_bench(config: BenchConfig, out: Path) -> dict:
    """Every measurement in one run; returns (and writes) the ``bench.json`` content."""
    from gbdist.learning.labels import load_labels

    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.zarr"):  # every stage must run, none be skipped as done
        shutil.rmtree(old)
    files = expand_inputs(config.inputs)
    labels = load_labels(config.labels)
    result: dict = {"config": config.model_dump(), "cpu_count": os.cpu_count()}

    log.info("bench: parsing %d dumps", len(files))
    result["parse"] = parse_rate(files, config.read)

    if config.featomic:
        from gbdist.compute.soap import SoapParams, backend_version

        backend_version(SoapParams(backend="featomic"))  # a clear error now, not after an hour
    log.info("bench: 1 vs 2 workers on %d dumps", config.speedup_dumps)
    result["speedup"] = speedup(files[: config.speedup_dumps], out, config.memory_limit, config.speedup_repeats,
                                config.featomic, config.read, config.select)

    store = out / "olmsted.zarr"
    cluster = ClusterConfig(workers=config.workers, memory_limit=config.memory_limit)
    t0 = time.perf_counter()
    with dask_client(cluster) as client:
        start_s = time.perf_counter() - t0
        log.info("bench: the data path on %d dumps", len(files))
        figures, info = data_path(client, store, files, config.workers, config.read, config.select)
        figures.append(learn_stage(client, store, labels, out / "models"))
        if config.site_fit:
            log.info("bench: EMT site energies and a per-atom model on every row")
            site_figures, result["site_rounds"] = site_stages(client, store, config.site_scale)
            result["site_scale"] = config.site_scale
            figures.extend(site_figures)
        log.info("bench: predict the last %d dumps with the learnt bundle", config.predict_dumps)
        result["predict"] = predict_stage(client, out / "models", files[-config.predict_dumps:], out / "predict")
        result["soap_read"] = soap_read_pass(client, store)
        result["olmsted"] = {"cluster_start_s": start_s, "figures": _as_dicts(figures), **info}
        if config.featomic:
            log.info("bench: the data path with featomic")
            f_store = out / "olmsted-featomic.zarr"
            f_figures, f_info = data_path(client, f_store, files, config.workers, config.read, config.select, "featomic",
                                          config.featomic_eps)
            result["olmsted_featomic"] = {"cluster_start_s": start_s, "figures": _as_dicts(f_figures), **f_info}
            if config.featomic_eps is not None:  # the count at the default eps; featomic_eps stays chosen
                lae = run_lae_stage(client, str(f_store), LaeParams().eps)
                result["olmsted_featomic"] |= {"default_eps": lae.eps, "n_unique_default_eps": lae.n_unique,
                                               "lae_s_default_eps": lae.wall_s}
        if config.scale:
            log.info("bench: %d× scale-up", config.scale)
            scaled = scale_up(client, files, labels, config.scale, config.displacement, out, config.workers, config.read,
                              config.select)
            scaled["figures"] = _as_dicts(scaled["figures"])
            result["scale_up"] = scaled
    if config.huge_atoms:  # a cluster of its own, as a job of its own starts: its peak is not the earlier runs' heap
        log.info("bench: one structure of %d atoms or more", config.huge_atoms)
        with dask_client(cluster) as client:
            huge = huge_structure(client, config, out, config.workers)
        huge["figures"] = _as_dicts(huge["figures"])
        result["huge"] = huge

    log.info("bench: bare SOAP kernels on %d dumps", config.bare_dumps)
    result["bare"] = bare_kernel(store, config.bare_dumps)
    if config.featomic:
        result["bare_featomic"] = bare_kernel(store, config.bare_dumps, "featomic")
    log.info("bench: NumPy brute-force leader pass")
    result["numpy_leaders"] = numpy_leader_pass(store)
    log.info("bench: leader search in memory, %d rows", config.kernel_rows)
    result["leader_kernels"] = leader_kernels(store, config.kernel_rows, config.kernel_fine_eps)
    result["summary"] = _summary(result, figures, config.workers)
    (out / "bench.json").write_text(json.dumps(result, indent=1, default=float))
    (out / "bench.md").write_text(bench_markdown(result))
    return result


def _as_dicts(figures: list[StageFigure]) -> list[dict]:
    """Stage figures as JSON-ready dicts, rows/s included."""
    return [asdict(f) | {"rows_per_s": f.rows_per_s} for f in figures]


def _total_s(run: dict) -> float:
    """Cluster start + the soap, asr and lae walls of one data-path run (``olmsted_total_s``)."""
    return run["cluster_start_s"] + sum(f["wall_s"] for f in run["figures"] if f["stage"] in ("soap", "asr", "lae"))


def _summary(result: dict, figures: list[StageFigure], workers: int) -> dict:
    olm = result["olmsted"]
    bare_s = olm["n_lae"] / result["bare"]["rows_per_cpu_s"]
    data_stages = [f for f in figures if f.stage in ("soap", "asr", "lae", "learn")]
    per_core = result["speedup"]["rows_per_s_per_core"]
    summary = {
        "olmsted_total_s": _total_s(olm),
        "soap_rows_per_s_per_core": per_core["dscribe"],
        "soap_vs_bare": per_core["dscribe"] / result["bare"]["rows_per_cpu_s"],
        "passes_asr": olm["passes_asr"],
        "passes_lae": olm["passes_lae"],
        "n_unique": olm["n_unique"],
        "soap_efficiency": olm["soap_efficiency"],
        "soap_efficiency_vs_bare": bare_s / (olm["soap_s"] * workers),
        "speedup_2v1": result["speedup"]["speedup_2v1"],
        "lae_s": olm["lae_s"],
        "lae_vs_numpy": result["numpy_leaders"]["wall_s"] / olm["lae_s"],
        "soap_read_s": result["soap_read"]["wall_s"],
        **{f"search_vs_numpy_eps{eps}": k["ratio"] for eps, k in result["leader_kernels"].items()},
        "parse_mb_s_per_core": result["parse"]["mb_s_per_core"],
        "predict_s": result["predict"]["wall_s"],
        "predict_rows_per_s": result["predict"]["rows_per_s"],
        "peak_rss_gib_1x": max(f.peak_rss_gib_per_worker for f in data_stages),
    }
    for f in figures:
        if f.stage in ("site_energy", "site_fit", "site_fit_external", "site_fit_external_scaled"):
            summary |= {f"{f.stage}_s": f.wall_s, f"{f.stage}_rows": f.rows, f"{f.stage}_peak_rss_gib": f.peak_rss_gib_per_worker}
    summary |= {f"{stage}_rounds": n for stage, n in result.get("site_rounds", {}).items()}
    if "site_fit_external_scaled" in result.get("site_rounds", {}):
        summary["site_scale_factor"] = result["site_scale"]
    if "olmsted_featomic" in result:
        fea = result["olmsted_featomic"]
        summary.update({
            "olmsted_total_s_featomic": _total_s(fea),
            "soap_rows_per_s_per_core_featomic": per_core["featomic"],
            "soap_vs_bare_featomic": per_core["featomic"] / result["bare_featomic"]["rows_per_cpu_s"],
            "featomic_vs_dscribe_rows_per_s": per_core["featomic"] / per_core["dscribe"],
            "n_unique_featomic": fea["n_unique"], "eps_featomic": fea["eps"]})
        if "n_unique_default_eps" in fea:
            summary["n_unique_featomic_default_eps"] = fea["n_unique_default_eps"]
    if "huge" in result:
        huge = result["huge"]
        rate = huge["n_lae"] / (huge["soap_s"] * workers)
        olm_rate = olm["n_lae"] / (olm["soap_s"] * workers)
        summary.update({
            "huge_atoms": huge["n_atoms"], "huge_n_lae": huge["n_lae"], "huge_domains": int(np.prod(huge["grid"])),
            "huge_total_s": sum(f["wall_s"] for f in huge["figures"] if f["stage"] in ("soap", "asr", "lae")),
            "huge_select_s": huge["select_s"], "huge_soap_s": huge["soap_s"],
            "huge_peak_rss_gib": max(f["peak_rss_gib_per_worker"] for f in huge["figures"] if f["stage"] != "select"),
            "huge_soap_rows_per_s_per_core": rate, "olmsted_soap_rows_per_s_per_core": olm_rate,
            "huge_vs_olmsted_soap_rate": rate / olm_rate,
            "huge_file_reads_per_atom": huge["atoms_parsed"] / huge["n_atoms"],
            "huge_passes_asr": huge["passes_asr"], "huge_passes_lae": huge["passes_lae"]})
    if "scale_up" in result:
        walls = {f["stage"]: f["wall_s"] for f in result["scale_up"]["figures"]}
        walls_1x = {f.stage: f.wall_s for f in figures}
        summary["peak_rss_gib_10x"] = max(f["peak_rss_gib_per_worker"] for f in result["scale_up"]["figures"]
                                          if f["stage"] != "select")  # select is not metered alone
        summary["scale_factor"] = result["scale_up"]["factor"]
        summary.update({f"growth_{stage}": walls[stage] / walls_1x[stage] for stage in ("soap", "asr", "lae")})
        summary["asr_lae_share_of_soap_10x"] = (walls["asr"] + walls["lae"]) / walls["soap"]
        summary["passes_asr_10x"] = result["scale_up"]["passes_asr"]
        summary["passes_lae_10x"] = result["scale_up"]["passes_lae"]
    return summary


def bench_markdown(result: dict) -> str:
    """The figures as Markdown tables: the summary, then every stage of every run."""
    lines = ["| figure | value |", "| --- | --- |"]
    lines += [f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in result["summary"].items()]
    for run in ("olmsted", "olmsted_featomic", "scale_up", "huge"):
        if run not in result:
            continue
        lines += ["", f"**{run}** ({result[run]['n_gb']} GBs, {result[run]['n_lae']:,} LAEs)", "",
                  "| stage | wall s | CPU s | rows/s | peak RSS per worker GiB |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {f['stage']} | {f['wall_s']:.1f} | {f['cpu_s']:.1f} | {f['rows_per_s']:,.0f} | "
                  f"{f['peak_rss_gib_per_worker']:.2f} |" for f in result[run]["figures"]]
    if "predict" in result:
        f = result["predict"]
        lines += ["", f"**predict** ({f['dumps']} dumps, {f['rows']:,} LAEs, SOAP included): {f['wall_s']:.1f} s wall, "
                  f"{f['rows_per_s']:,.0f} rows/s, peak RSS per worker {f['peak_rss_gib_per_worker']:.2f} GiB"]
    return "\n".join(lines) + "\n"
