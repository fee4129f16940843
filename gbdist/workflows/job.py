"""A job: the job file (YAML, validated, relative paths from its folder) and running its stages in order."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gbdist.compute.domains import DOMAIN_ATOMS, SPLIT_ATOMS
from gbdist.compute.select import SelectParams
from gbdist.compute.soap import SoapParams
from gbdist.datasets.generate import GenerateParams
from gbdist.io import ReadParams, expand_inputs
from gbdist.io.config_files import read_mapping, validate
from gbdist.io.inputs import describe_inputs
from gbdist.stages.asr import run_asr_stage
from gbdist.stages.client import ClusterConfig, dask_client
from gbdist.stages.lae import LaeReport, run_lae_stage
from gbdist.stages.soap import SoapReport, SoapStageParams, check_same_job, run_soap_stage
from gbdist.store.lock import store_lock
from gbdist.store.schema import GB_ID, PROGRESS_SOAP, choose_eps, chosen_eps, eps_key, lae_done, open_group, stage_done

STAGES = ("soap", "asr", "lae")


class LaeParams(BaseModel):
    """Unique-LAE discovery: the SOAP distance threshold."""

    model_config = ConfigDict(extra="forbid")
    eps: float = Field(0.032, gt=0, lt=2)


class GenerateJob(GenerateParams):
    """The ``generate`` stage: build and relax tilt boundaries into the folder ``out``."""

    out: str = Field(description="folder for structures/, labels.csv, boundaries.csv, energies.png")


class JobConfig(BaseModel):
    """A whole job: inputs, store, parameters of each stage, where to run, which stages."""

    model_config = ConfigDict(extra="forbid")
    store: str = Field(description="path or fsspec URL of the Zarr store")
    storage_options: dict | None = None
    inputs: list[str] = Field(min_length=1, description="files, directories or glob patterns")
    read: ReadParams = ReadParams()
    select: SelectParams = SelectParams()
    soap: SoapParams = SoapParams()
    chunk_rows: int = Field(4096, ge=16)
    split_atoms: int = Field(SPLIT_ATOMS, ge=1, description="atoms above which a structure is cut into domains")
    domain_atoms: int = Field(DOMAIN_ATOMS, ge=1, description="atoms per domain aimed at when one is cut")
    lae: LaeParams = LaeParams()
    cluster: ClusterConfig = ClusterConfig()
    stages: list[Literal["generate", "soap", "asr", "lae"]] = list(STAGES)
    generate: GenerateJob | None = None

    @model_validator(mode="after")
    def _generate_needs_its_section(self):
        if "generate" in self.stages and self.generate is None:
            raise ValueError("the generate stage needs a 'generate' section (at least its 'out' folder)")
        return self

    def stage_params(self) -> SoapStageParams:
        return SoapStageParams(read=self.read, select=self.select, soap=self.soap, chunk_rows=self.chunk_rows,
                               split_atoms=self.split_atoms, domain_atoms=self.domain_atoms)


def _is_url(s: str) -> bool:
    return "://" in s


def load_job(path: str | Path) -> JobConfig:
    """Read and validate a job file (safe YAML loading only).

    Raises
    ------
    GbdistError
        Naming the file and every key that is unknown or of the wrong type.
    """
    path = Path(path)
    job = validate(JobConfig, read_mapping(path, "job file"), path, "job file")
    base = path.resolve().parent
    job.inputs = [i if _is_url(i) or Path(i).is_absolute() else os.path.normpath(base / i) for i in job.inputs]
    if not _is_url(job.store) and not Path(job.store).is_absolute():
        job.store = os.path.normpath(base / job.store)
    if job.generate is not None and not Path(job.generate.out).is_absolute():
        job.generate.out = os.path.normpath(base / job.generate.out)
    return job


log = logging.getLogger(__name__)


@dataclass
class JobReport:
    """The summary a job prints."""

    store: str
    soap: SoapReport | None = None
    asr_wall_s: float = 0.0
    lae: LaeReport | None = None
    wall_s: float = 0.0
    skipped: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[dict]:
        return self.soap.failures if self.soap else []


def generate_boundaries(out: str | Path, params: GenerateParams, cluster: ClusterConfig):
    """Build and relax the tilt boundaries of ``params`` on the workers into ``out`` (reused if
    there with the same parameters); returns the ``boundaries.csv`` table."""
    from gbdist.datasets.tilt_set import generate_dataset

    with dask_client(cluster) as client:
        table = generate_dataset(client, params, out)
    log.info("generate: %d boundaries in %s", len(table), out)
    return table


def run_job(job: JobConfig) -> JobReport:
    """Run the job's stages; already-finished work in the store is not redone."""
    t0 = time.perf_counter()
    report = JobReport(store=job.store)
    if "generate" in job.stages:
        generate_boundaries(job.generate.out, job.generate, job.cluster)
    files = expand_inputs(job.inputs)
    # checksums only where the files are read: the soap stage (asr and lae read the store alone;
    # at 10× the Olmsted data, hashing 4.5 GB of dumps took longer than the asr stage itself)
    inputs = describe_inputs(files) if "soap" in job.stages else None
    log.info("%d input files; store %s", len(files), job.store)
    if _all_done(job):
        group = open_group(job.store, mode="r", storage_options=job.storage_options)
        check_same_job(group, job.store, inputs, job.stage_params())
        report.soap = SoapReport(n_gb=group[GB_ID].shape[0], n_lae=group["soap"].shape[0],
                                 n_features=group["soap"].shape[1], chunks_total=group[PROGRESS_SOAP].shape[0],
                                 failures=list(group.attrs.get("failures", [])))
        report.skipped = list(job.stages)
        report.wall_s = time.perf_counter() - t0
        return report
    with store_lock(job.store), dask_client(job.cluster) as client:
        if "soap" in job.stages:
            report.soap = run_soap_stage(client, job.store, inputs, job.stage_params(), job.storage_options,
                                         task_memory=job.cluster.task_memory_bytes)
        group = open_group(job.store, mode="r", storage_options=job.storage_options)
        if "asr" in job.stages:
            if stage_done(group, "soap"):
                report.asr_wall_s = run_asr_stage(client, job.store, job.storage_options)
            else:
                report.skipped.append("asr (soap incomplete)")
        if "lae" in job.stages:
            if not stage_done(group, "soap"):
                report.skipped.append("lae (soap incomplete)")
            elif lae_done(group, job.lae.eps):
                choose_eps(open_group(job.store, mode="a", storage_options=job.storage_options), job.store, job.lae.eps)
                report.skipped.append(f"lae eps={job.lae.eps}")
            else:
                report.lae = run_lae_stage(client, job.store, job.lae.eps, job.storage_options, choose=True)
    report.wall_s = time.perf_counter() - t0
    return report


def _all_done(job: JobConfig) -> bool:
    """True if the store exists and records every requested stage as done (no cluster needed)."""
    try:
        group = open_group(job.store, mode="r", storage_options=job.storage_options)
    except Exception:  # no store yet (or unreadable): the stages will say why
        return False
    lae_chosen = lae_done(group, job.lae.eps) and chosen_eps(group) == float(eps_key(job.lae.eps))
    return all(lae_chosen if s == "lae" else stage_done(group, s) for s in job.stages if s != "generate")
