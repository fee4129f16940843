"""One writer per store: a lock file beside a local store, taken for the length of a run.

``<store>.lock`` holds the writer's host, pid and start time. A second run on the same store
is refused with a message naming them. A lock left by a process that no longer exists (on
this host) is stale and is taken over. Stores at fsspec URLs get no lock: run one writer
at a time there.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from gbdist.errors import StoreError

log = logging.getLogger(__name__)


def lock_path(store: str) -> Path:
    """Where the lock of a local store lives: beside it, as ``<store>.lock``."""
    path = Path(store)
    return path.with_name(path.name.rstrip("/") + ".lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _take(path: Path) -> bool:
    """Create the lock file atomically; False if it already exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        json.dump({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}, fh)
    return True


@contextmanager
def store_lock(store: str):
    """Hold the store's write lock for the body; refuse if another live run holds it."""
    if "://" in store:
        log.warning("%s: remote store, no write lock; run one writer at a time", store)
        yield
        return
    path = lock_path(store)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        taken = _take(path)
        if not taken:
            holder = _holder(path)
            if holder.get("host") == socket.gethostname() and not _alive(int(holder.get("pid", -1))):
                log.warning("%s: taking over a stale lock of pid %s", store, holder.get("pid"))
                path.unlink(missing_ok=True)
                taken = _take(path)
    except OSError as err:
        raise StoreError(f"{store}: cannot write the store ({err.strerror or err})") from None
    if not taken:
        holder = _holder(path)
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))
        raise StoreError(f"{store}: in use by another gbdist run (pid {holder.get('pid')} on "
                         f"{holder.get('host')}, since {since}); wait for it, or remove {path} if that run is gone")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
