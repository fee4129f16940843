"""Unique LAEs on a store, end to end: check the options, take the store's lock, start the client,
run the lae stage (``find_laes``) or count unique LAEs over a range of eps (``sweep_laes``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gbdist.stages.client import ClusterConfig, dask_client
from gbdist.stages.lae import LaeReport, run_lae_stage, run_lae_sweep
from gbdist.store.lock import store_lock
from gbdist.store.schema import open_group


class LaeOptions(BaseModel):
    """One lae run: eps (SOAP distance threshold) and whether it becomes the store's chosen eps."""

    model_config = ConfigDict(extra="forbid")
    eps: float = Field(0.032, gt=0, lt=2, description="SOAP distance threshold for unique LAEs, in (0, 2)")
    choose: bool = Field(False, description="make this eps the store's chosen one (the LER later commands use); "
                         "the first LAE run in a store is chosen anyway")


class SweepOptions(BaseModel):
    """A sweep: eps values (each in (0, 2)) whose unique-LAE counts are measured; nothing is written to the store."""

    model_config = ConfigDict(extra="forbid")
    eps: list[float] = Field(min_length=2)

    @field_validator("eps")
    @classmethod
    def _usable(cls, values: list[float]) -> list[float]:
        bad = [v for v in values if not 0 < v < 2]
        if bad:
            raise ValueError(f"{bad} outside (0, 2)")
        return values


def parse_sweep(text: str) -> list[float]:
    """``START:STOP:STEP`` → the eps values from START to STOP inclusive (ValueError if malformed)."""
    try:
        lo, hi, step = (float(v) for v in text.split(":"))
    except ValueError:
        raise ValueError("takes START:STOP:STEP, e.g. 0.01:0.08:0.005") from None
    if not (0 < lo < hi < 2 and step > 0):
        raise ValueError("needs 0 < START < STOP < 2 and STEP > 0")
    return [round(v, 6) for v in np.arange(lo, hi + step / 2, step)]


def find_laes(store: str, options: LaeOptions | None = None, cluster: ClusterConfig | None = None,
              storage_options: dict | None = None) -> LaeReport:
    """Find the unique LAEs at ``options.eps``, label every row and write the LER into the store."""
    options = options or LaeOptions()
    open_group(store, storage_options=storage_options)  # a clear error, before any lock file, if it is no store
    with store_lock(store), dask_client(cluster or ClusterConfig()) as client:
        return run_lae_stage(client, store, options.eps, storage_options, options.choose)


@dataclass
class SweepResult:
    """Unique-LAE counts per eps, the eps at the knee of the curve and the PNG of the curve."""

    eps: list[float]
    counts: list[int]
    knee: float
    png: Path


def sweep_laes(store: str, options: SweepOptions, png: str | Path, cluster: ClusterConfig | None = None,
               storage_options: dict | None = None) -> SweepResult:
    """Count unique LAEs for every eps of ``options`` (no labels written); save the curve to ``png``."""
    open_group(store, storage_options=storage_options)
    with store_lock(store), dask_client(cluster or ClusterConfig()) as client:
        counts, knee = run_lae_sweep(client, store, options.eps, png, storage_options)
    return SweepResult(list(options.eps), counts, knee, Path(png))
