"""Progress for long steps: a rich bar on a terminal, log lines every 10% elsewhere."""

from __future__ import annotations

import logging
import sys

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

log = logging.getLogger(__name__)


def with_progress(items, description: str, total: int | None = None):
    """Iterate over ``items`` (``total`` of them, by default ``len(items)``), showing progress (a bar
    on a terminal, else a log line per 10%)."""
    total = len(items) if total is None else total
    if total == 0:
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not sys.stderr.isatty(), transient=False) as bar:
        task = bar.add_task(description, total=total)
        step = max(1, total // 10)
        for done, item in enumerate(items, 1):
            yield item
            bar.advance(task)
            if done % step == 0 or done == total:
                log.info("%s: %d/%d done", description, done, total)


def as_completed_with_progress(futures, description: str):
    """Iterate over Dask ``futures`` as they finish, showing progress."""
    from distributed import as_completed

    yield from with_progress(as_completed(futures), description, total=len(futures))
