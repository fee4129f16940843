"""A Dask ``Client`` from configuration: a LocalCluster, or an existing scheduler's address."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

from pydantic import BaseModel, ConfigDict, Field

# One dscribe / numpy kernel per worker thread: no hidden BLAS or OpenMP threads.
_SINGLE_THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


class ClusterConfig(BaseModel):
    """Where the work runs.

    ``scheduler``: address of a running scheduler (``tcp://host:8786``); otherwise a
    LocalCluster of ``workers`` processes with ``threads_per_worker`` threads each.
    """

    model_config = ConfigDict(extra="forbid")
    scheduler: str | None = None
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    threads_per_worker: int = Field(1, ge=1)
    memory_limit: str = "4GiB"
    dashboard: bool = False


@contextmanager
def dask_client(config: ClusterConfig | None = None):
    """Yield a ``distributed.Client`` for ``config``; close what was started on exit."""
    from distributed import Client, LocalCluster

    config = config or ClusterConfig()
    if config.scheduler:
        with Client(config.scheduler) as client:
            yield client
        return
    os.environ.update(_SINGLE_THREAD_ENV)  # inherited by the worker processes
    with LocalCluster(
        n_workers=config.workers,
        threads_per_worker=config.threads_per_worker,
        memory_limit=config.memory_limit,
        processes=True,
        dashboard_address=":0" if config.dashboard else None,
        silence_logs=logging.ERROR,
    ) as cluster, Client(cluster) as client:
        yield client


def n_worker_threads(client) -> int:
    """Total worker threads the client can use."""
    return sum(w["nthreads"] for w in client.scheduler_info(n_workers=-1)["workers"].values())
