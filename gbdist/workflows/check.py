"""``gbdist check``: verify every chunk of a store, and with ``repair`` clear the bad ones (under the
store's write lock) so a rerun of the stage that wrote them recomputes exactly those."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np

from gbdist.stages.progress import with_progress
from gbdist.store.check import CheckReport, repair, store_arrays
from gbdist.store.lock import store_lock
from gbdist.store.schema import chunk_decodes, open_group


def check_store(store: str, repair_bad: bool = False, storage_options: dict | None = None,
                threads: int = 4) -> CheckReport:
    """Decode every stored chunk of ``store`` (``threads`` at a time); with ``repair_bad``,
    clear each bad chunk and the completion record that covers it (``gbdist.store.check``)."""
    with store_lock(store) if repair_bad else nullcontext():
        group = open_group(store, mode="a" if repair_bad else "r", storage_options=storage_options)
        arrays = store_arrays(group)
        chunks = [(path, array, tuple(int(i) for i in index))
                  for path, array in arrays for index in np.ndindex(*array.cdata_shape)]
        report = CheckReport(store, n_arrays=len(arrays), n_chunks=len(chunks))
        with ThreadPoolExecutor(threads) as pool:
            decodes = pool.map(lambda chunk: chunk_decodes(chunk[1], chunk[2]), chunks)
            for (path, _, index), ok in zip(chunks, with_progress(decodes, "check chunks", total=len(chunks))):
                if not ok:
                    report.bad.append((path, index))
        if repair_bad and report.bad:
            repair(group, store, dict(arrays), report)
    return report
