"""The job file (YAML): validated, with relative paths taken from the job file's folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gbdist.cluster import ClusterConfig
from gbdist.datasets.generate import GenerateParams
from gbdist.io import ReadParams
from gbdist.select import SelectParams
from gbdist.soap import SoapParams
from gbdist.stages.soap import SoapStageParams
from gbdist.yaml_model import read_mapping, validate

STAGES = ("soap", "asr", "lae")


class LaeParams(BaseModel):
    """Unique-LAE discovery: SOAP distance threshold and discovery partitions (default 2 per worker thread)."""

    model_config = ConfigDict(extra="forbid")
    eps: float = Field(0.032, gt=0, lt=2)
    partitions: int | None = Field(None, ge=1)


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
        return SoapStageParams(read=self.read, select=self.select, soap=self.soap, chunk_rows=self.chunk_rows)


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
