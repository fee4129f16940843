"""A Dask ``Client`` from configuration: a LocalCluster, an existing scheduler, or batch jobs.

The ``cluster`` section of a job file, or a cluster file given with ``--cluster``, says where
the work runs:

- nothing (or ``workers``/``threads_per_worker``/``memory_limit``): a LocalCluster here;
- ``scheduler: tcp://host:8786``: a scheduler someone started (``deploy/local/``);
- ``jobqueue: {system: slurm | pbs, ...}``: workers submitted as batch jobs through
  dask-jobqueue (``deploy/slurm/``, ``deploy/pbs/``), a fixed number or adaptive.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import CancelledError
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gbdist.errors import GbdistError
from gbdist.io.config_files import read_mapping, validate
from gbdist.stages.watchdog import Watchdog, raise_task_failure

log = logging.getLogger(__name__)

# One dscribe / numpy kernel per worker thread: no hidden BLAS or OpenMP threads.
_SINGLE_THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")}

_MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": str(256 << 20), "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}
"""glibc malloc settings of local workers. Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536, which
also fixes glibc's mmap threshold at 128 kiB: every SOAP block is then a fresh mmap. Measured on
24 Olmsted GBs in one process, kernel rows per CPU-s: dscribe 2,377 → 2,842, featomic 2,976 →
3,594 with these values (and 2,620 / 3,526 with glibc's own dynamic defaults)."""


class Adaptive(BaseModel):
    """Adaptive scaling between ``minimum`` and ``maximum`` batch jobs."""

    model_config = ConfigDict(extra="forbid")
    minimum: int = Field(0, ge=0)
    maximum: int = Field(ge=1)


class JobqueueConfig(BaseModel):
    """Dask workers as batch jobs (dask-jobqueue).

    Each job asks for ``cores`` cores and ``memory`` and runs ``processes`` worker processes
    (``cores // processes`` threads each). ``jobs`` jobs are submitted, or, with ``adaptive``,
    between its minimum and maximum as the work needs. The other keys are passed to
    ``dask_jobqueue.SLURMCluster`` / ``PBSCluster`` under the same names.
    """

    model_config = ConfigDict(extra="forbid")
    system: Literal["slurm", "pbs"]
    jobs: int = Field(1, ge=1, description="batch jobs to submit (when not adaptive)")
    adaptive: Adaptive | None = None
    cores: int = Field(1, ge=1, description="cores per job")
    processes: int = Field(1, ge=1, description="worker processes per job")
    memory: str = Field("4GiB", description="memory per job")
    walltime: str = "01:00:00"
    queue: str | None = None
    account: str | None = None
    resource_spec: str | None = Field(None, description="PBS only: the -l select=... line")
    interface: str | None = Field(None, description="network interface of the workers, e.g. ib0 or lo")
    local_directory: str | None = Field(None, description="worker scratch space on the compute node")
    log_directory: str | None = Field(None, description="where the batch jobs write their logs")
    job_extra_directives: list[str] = Field(default_factory=list, description="extra #SBATCH / #PBS lines")
    job_script_prologue: list[str] = Field(default_factory=list, description="shell lines before the worker starts")
    wait_s: float = Field(600, gt=0, description="how long to wait for the workers to start")

    @model_validator(mode="after")
    def _pbs_only(self):
        if self.system != "pbs" and self.resource_spec is not None:
            raise ValueError("resource_spec is a PBS setting; SLURM takes cores and memory")
        if self.processes > self.cores:
            raise ValueError(f"processes ({self.processes}) cannot exceed cores ({self.cores})")
        return self

    @property
    def n_workers(self) -> int:
        """Worker processes once every job has started (the adaptive minimum, if adaptive)."""
        return (self.adaptive.minimum if self.adaptive else self.jobs) * self.processes


class ClusterConfig(BaseModel):
    """Where the work runs.

    ``scheduler``: address of a running scheduler (``tcp://host:8786``); ``jobqueue``: batch
    jobs; otherwise a LocalCluster of ``workers`` processes with ``threads_per_worker`` threads.
    """

    model_config = ConfigDict(extra="forbid")
    scheduler: str | None = None
    jobqueue: JobqueueConfig | None = None
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str = "4GiB"
    dashboard: bool = False
    task_memory: str | None = Field(None, description="memory budget of one SOAP task, e.g. 1GiB (its centres go to "
                                    "the SOAP code in batches that fit); default a quarter of each worker's memory limit, "
                                    "split between its threads")
    stall_timeout_s: float = Field(120, gt=0, description="s the cluster may have unfinished tasks and no worker able "
                                   "to run them (none left, or all paused at their memory limit) before the job "
                                   "cancels them and ends, naming them; with jobqueue at least its wait_s")

    @property
    def task_memory_bytes(self) -> int | None:
        """``task_memory`` in bytes (None: derived from each worker's memory limit)."""
        from dask.utils import parse_bytes

        return None if self.task_memory is None else int(parse_bytes(self.task_memory))

    @model_validator(mode="after")
    def _one_kind(self):
        if self.scheduler and self.jobqueue:
            raise ValueError("give either scheduler or jobqueue, not both")
        from dask.utils import parse_bytes

        for name, least in (("memory_limit", 0), ("task_memory", 1)):  # memory_limit: 0 = none, as in Dask
            value = getattr(self, name)
            try:
                if value not in (None, "auto") and parse_bytes(value) < least:
                    raise ValueError
            except ValueError:
                raise ValueError(f"{name}: {value!r} is not a memory size (e.g. 4GiB, 500MB)") from None
        return self


def load_cluster(path: str | Path) -> ClusterConfig:
    """Read a cluster file: a YAML mapping that is a job file's ``cluster`` section, or holds one.

    Raises
    ------
    GbdistError
        Naming the file and every key that is unknown or of the wrong type.
    """
    path = Path(path)
    raw = read_mapping(path, "cluster file")
    if set(raw) == {"cluster"} and isinstance(raw["cluster"], dict):
        raw = raw["cluster"]
    return validate(ClusterConfig, raw, path, "cluster file")


def _job_kwargs(config: JobqueueConfig) -> dict:
    """dask-jobqueue keyword arguments of ``config``, with single-threaded numerics on the workers."""
    kwargs = config.model_dump(exclude={"system", "jobs", "adaptive", "wait_s"}, exclude_none=True)
    kwargs["job_script_prologue"] = [*(f"export {k}={v}" for k, v in _SINGLE_THREAD_ENV.items()),
                                     *config.job_script_prologue]
    return kwargs


def _job_class(config: JobqueueConfig):
    import dask_jobqueue

    return {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[config.system]


def jobqueue_cluster(config: JobqueueConfig):
    """A dask-jobqueue cluster object for ``config``; no job is submitted until it is scaled."""
    return _job_class(config)(silence_logs=logging.ERROR, **_job_kwargs(config))


def job_script(config: JobqueueConfig, scheduler: str = "tcp://SCHEDULER:8786") -> str:
    """The batch script one worker job of ``config`` would be submitted with (nothing is started)."""
    job = _job_class(config).job_cls(scheduler=scheduler, name="gbdist-worker", **_job_kwargs(config))
    return job.job_script()


def _wait_for_batch_workers(client, cluster, config: JobqueueConfig) -> None:
    """Wait until every requested worker runs; go on with fewer (with a warning) after ``wait_s``."""
    wanted = max(config.n_workers, 1)
    log.info("waiting for %d worker(s) from %s (up to %.0f s)", wanted, config.system, config.wait_s)
    try:
        client.wait_for_workers(wanted, timeout=config.wait_s)
    except TimeoutError:
        have = len(client.scheduler_info(n_workers=-1)["workers"])
        if have == 0:
            raise GbdistError(f"no {config.system} worker started within {config.wait_s:.0f} s; check the "
                              f"queue and the job logs ({config.log_directory or 'the submit folder'}). "
                              f"Job script:\n{cluster.job_script()}") from None
        log.warning("%d of %d workers started within %.0f s; going on with them", have, wanted, config.wait_s)


@contextmanager
def dask_client(config: ClusterConfig | None = None):
    """Yield a ``distributed.Client`` for ``config``, watched (``Watchdog``): no wait on it outlasts a
    cluster that cannot run the work by more than ``stall_timeout_s``, and a task killed with its
    worker, or cancelled for a stall, ends the job with a ``TaskFailed`` that says why. Close
    what was started on exit."""
    from distributed import KilledWorker

    config = config or ClusterConfig()
    # batch workers lost to a walltime may wait in the queue again: as long as they may at the start
    stall_s = max(config.stall_timeout_s, config.jobqueue.wait_s) if config.jobqueue else config.stall_timeout_s
    with _cluster_client(config) as client, Watchdog(client, stall_s):
        try:
            yield client
        except (KilledWorker, CancelledError) as err:
            raise_task_failure(client, err, "a Dask task")
            raise


@contextmanager
def _cluster_client(config: ClusterConfig):
    import dask
    from distributed import Client, LocalCluster

    if config.scheduler:
        with Client(config.scheduler) as client:
            yield client
        return
    if config.jobqueue:
        jq = config.jobqueue
        with jobqueue_cluster(jq) as cluster, Client(cluster) as client:
            if jq.adaptive:
                cluster.adapt(minimum_jobs=jq.adaptive.minimum, maximum_jobs=jq.adaptive.maximum)
            else:
                cluster.scale(jobs=jq.jobs)
            _wait_for_batch_workers(client, cluster, jq)
            yield client
        return
    os.environ.update(_SINGLE_THREAD_ENV)  # inherited by the worker processes
    environ = dask.config.get("distributed.nanny.pre-spawn-environ") | _MALLOC_ENV
    # the workers' statistical profiler samples every thread each 10 ms, for the dashboard's
    # profile page only: off without a dashboard
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ,
                          "distributed.worker.profile.enabled": config.dashboard}):
        cluster = LocalCluster(
            n_workers=config.workers,
            threads_per_worker=config.threads_per_worker,
            memory_limit=config.memory_limit,
            processes=True,
            dashboard_address=":0" if config.dashboard else None,
            # the driver reports every failed task itself (its error, or why its worker was killed);
            # the workers' own "Compute Failed" records would only repeat it, with a traceback
            silence_logs=logging.CRITICAL,
        )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        _close_local(cluster)


def _close_local(cluster) -> None:
    """Close a LocalCluster. A worker process that a nanny is still killing (one just restarted
    for memory) can outlast the close timeout; it is killed all the same, so that is logged, not
    raised: an error would replace the job's own outcome."""
    try:
        cluster.close()
    except TimeoutError:
        log.warning("a worker process was still exiting when the local cluster closed; it was killed")


def n_worker_threads(client) -> int:
    """Total worker threads the client can use."""
    return sum(w["nthreads"] for w in client.scheduler_info(n_workers=-1)["workers"].values())
