"""Bounded waits on a Dask cluster: no job hangs on workers that cannot run its tasks, and a task
that kills its worker is named with the reason.

Dask retries a task whose worker dies (``distributed.scheduler.allowed-failures``), then fails it
with ``KilledWorker``. Two cases never end on their own: no worker left, and every worker
*paused* (a worker pauses at 80% of its memory limit and holds memory Dask cannot spill, such as
what a C extension kept). A ``Watchdog`` thread, started with every client by
:func:`gbdist.stages.client.dask_client`, looks at the scheduler every few seconds; once the
cluster has had unfinished work and no way to run it for ``stall_s`` seconds, it cancels the
client's unfinished futures and records why, so every wait (``as_completed``, ``.result()``,
``dask.compute``, ``xgboost.dask``) returns, with an error that says what happened.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from concurrent.futures import CancelledError

from gbdist.errors import GbdistError

log = logging.getLogger(__name__)

POLL_S = 2.0
"""s between two looks at the scheduler."""


class TaskFailed(GbdistError):
    """A task that could not run: its worker was killed every time it tried, or the cluster stalled."""


def stall_reason(client) -> str | None:
    """Why the cluster cannot run anything now (no worker, or every worker paused with nothing
    executing), or None."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    if not workers:
        return "no worker is running"
    paused = [w for w in workers.values() if w.get("status") == "paused"]
    executing = sum(w.get("metrics", {}).get("task_counts", {}).get("executing", 0) for w in paused)
    if len(paused) < len(workers) or executing:  # a paused worker still finishes what it runs
        return None
    used = max(w.get("metrics", {}).get("memory", 0) for w in paused) / 2**30
    limit = max(w.get("memory_limit") or 0 for w in paused) / 2**30
    return (f"every worker is paused at its memory limit ({used:.2f} GiB in use of {limit:.2f} GiB, memory a "
            "task left that Dask cannot spill); give the workers more memory (memory_limit)")


NANNY_MEMORY_LOGGER = "distributed.nanny.memory"
"""Where a nanny says it restarted its worker for exceeding the memory budget."""


class _MemoryKills(logging.Handler):
    """Records the memory restarts of the nannies that run in this process (a LocalCluster's)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "memory budget" in record.getMessage():
            self.messages.append(record.getMessage())


def kill_reason(client, err=None) -> str:
    """Why the workers of a ``KilledWorker`` ``err`` died, from their nannies' logs (those in this
    process, recorded by the client's ``Watchdog``, and the cluster's): 'worker killed: memory
    (...)' when a nanny restarted the task's last worker (or, if its address is not known, any
    worker) for exceeding its memory budget, else 'worker killed'."""
    watchdog = _WATCHDOGS.get(client)
    memory = list(watchdog.memory_kills.messages) if watchdog else []
    if not memory:
        try:
            logs = client.get_worker_logs(nanny=True)
        except Exception:  # a scheduler without nannies, or one that is closing: say what is known
            logs = {}
        memory = [msg for lines in logs.values() if isinstance(lines, list) for _, msg in lines
                  if "memory budget" in msg]
    address = getattr(getattr(err, "last_worker", None), "address", None)
    if address and memory:
        memory = [msg for msg in memory if f"{address} " in msg]
    if memory:
        workers = client.scheduler_info(n_workers=-1)["workers"].values()
        limit = max((w.get("memory_limit") or 0 for w in workers), default=0)
        where = f" of {limit / 2**30:.2f} GiB" if limit else ""
        return (f"worker killed: memory (the nanny restarted the worker running it for passing 95% of its memory "
                f"limit{where}); give the workers more memory (memory_limit) or the tasks less (task_memory)")
    return "worker killed (its worker process died every time it ran the task; see the worker logs)"


class Watchdog:
    """Cancel a client's unfinished futures once its cluster has been unable to run them for
    ``stall_s`` seconds; ``reason`` then says why (else None)."""

    def __init__(self, client, stall_s: float):
        self.client, self.stall_s = client, stall_s
        self.reason: str | None = None
        self.memory_kills = _MemoryKills()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="gbdist-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        _WATCHDOGS[self.client] = self
        logger = logging.getLogger(NANNY_MEMORY_LOGGER)  # kept out of the console: the failure says it
        self._logger_state = logger.level, logger.propagate
        logger.setLevel(logging.WARNING)
        logger.propagate = False
        logger.addHandler(self.memory_kills)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        _WATCHDOGS.pop(self.client, None)
        logger = logging.getLogger(NANNY_MEMORY_LOGGER)
        logger.removeHandler(self.memory_kills)
        logger.setLevel(self._logger_state[0])
        logger.propagate = self._logger_state[1]

    def _unfinished(self) -> list:
        """Keys of the client's futures that have not finished."""
        return [k for k, f in list(self.client.futures.items()) if getattr(f, "status", "finished") == "pending"]

    def _watch(self) -> None:
        since = None
        while not self._stop.wait(POLL_S):
            try:
                why = stall_reason(self.client) if self._unfinished() else None
            except Exception:  # the client is closing, or its futures changed as we read them
                if self.client.status in ("closing", "closed"):
                    return
                continue
            if why is None:
                since = None
                continue
            since = since or time.monotonic()
            if time.monotonic() - since >= self.stall_s:
                self.reason = f"{why}; nothing could run for {self.stall_s:.0f} s"
                log.error("cluster stalled: %s; cancelling the unfinished tasks", self.reason)
                from distributed import Future

                self.client.cancel([Future(k, self.client) for k in self._unfinished()], reason=self.reason)
                since = None


_WATCHDOGS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def task_error(client, err: BaseException) -> str | None:
    """What went wrong with a task whose result raised ``err``, for a user: the kill or stall
    reason; None if ``err`` is the task's own error."""
    from distributed import KilledWorker

    if isinstance(err, KilledWorker):
        return kill_reason(client, err)
    if isinstance(err, CancelledError):
        watchdog = _WATCHDOGS.get(client)
        return watchdog.reason if watchdog and watchdog.reason else "cancelled"
    return None


def raise_task_failure(client, err: BaseException, stage: str) -> None:
    """Re-raise ``err`` as a ``TaskFailed`` naming ``stage`` if it is a killed or cancelled task."""
    why = task_error(client, err)
    if why is not None:
        task = getattr(err, "task", None)
        what = f" (task {task!r})" if task is not None else ""
        raise TaskFailed(f"{stage}{what}: {why}") from None
