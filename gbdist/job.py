"""Run a job's stages in order on one Dask client, and summarise what happened."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from gbdist.cluster import dask_client
from gbdist.config import JobConfig
from gbdist.inputs import describe_inputs
from gbdist.io import expand_inputs
from gbdist.lock import store_lock
from gbdist.stages.asr import run_asr_stage
from gbdist.stages.lae import LaeReport, lae_done, run_lae_stage
from gbdist.stages.soap import SoapReport, check_same_job, run_soap_stage
from gbdist.store import open_store, stage_done

log = logging.getLogger("gbdist")


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


def run_job(job: JobConfig) -> JobReport:
    """Run the job's stages; already-finished work in the store is not redone."""
    t0 = time.perf_counter()
    report = JobReport(store=job.store)
    if "generate" in job.stages:
        from gbdist.datasets.tilt_set import generate_dataset

        with dask_client(job.cluster) as client:
            table = generate_dataset(client, job.generate, job.generate.out)
        log.info("generate: %d boundaries in %s", len(table), job.generate.out)
    files = expand_inputs(job.inputs)
    inputs = describe_inputs(files)
    log.info("%d input files; store %s", len(files), job.store)
    if _all_done(job):
        group = open_store(job.store, mode="r", storage_options=job.storage_options)
        check_same_job(group, job.store, inputs, job.stage_params())
        report.soap = SoapReport(n_gb=group["gb/id"].shape[0], n_lae=group["soap"].shape[0],
                                 n_features=group["soap"].shape[1], chunks_total=group["progress/soap"].shape[0],
                                 failures=list(group.attrs.get("failures", [])))
        report.skipped = list(job.stages)
        report.wall_s = time.perf_counter() - t0
        return report
    with store_lock(job.store), dask_client(job.cluster) as client:
        if "soap" in job.stages:
            report.soap = run_soap_stage(client, job.store, inputs, job.stage_params(), job.storage_options)
        group = open_store(job.store, mode="r", storage_options=job.storage_options)
        if "asr" in job.stages:
            if stage_done(group, "soap"):
                report.asr_wall_s = run_asr_stage(client, job.store, job.storage_options)
            else:
                report.skipped.append("asr (soap incomplete)")
        if "lae" in job.stages:
            if not stage_done(group, "soap"):
                report.skipped.append("lae (soap incomplete)")
            elif lae_done(group, job.lae.eps):
                report.skipped.append(f"lae eps={job.lae.eps}")
            else:
                report.lae = run_lae_stage(client, job.store, job.lae.eps, job.storage_options, job.lae.partitions)
    report.wall_s = time.perf_counter() - t0
    return report


def _all_done(job: JobConfig) -> bool:
    """True if the store exists and records every requested stage as done (no cluster needed)."""
    try:
        group = open_store(job.store, mode="r", storage_options=job.storage_options)
    except Exception:  # no store yet (or unreadable): the stages will say why
        return False
    return all(lae_done(group, job.lae.eps) if s == "lae" else stage_done(group, s)
               for s in job.stages if s != "generate")
