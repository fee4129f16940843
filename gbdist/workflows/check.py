"""``gbdist check``: verify every chunk of a store, and with ``repair`` clear the bad ones (under the
store's write lock) so a rerun of the stage that wrote them recomputes exactly those."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import numpy as np

from gbdist.stages.progress import with_progress
from gbdist.store.check import CheckReport, repair, store_arrays
from gbdist.store.lock import store_lock
from gbdist.store.schema import bad_chunks, open_group


def check_store(store: str, repair_bad: bool = False, storage_options: dict | None = None,
                threads: int = 4) -> CheckReport:
    """Decode every stored chunk of ``store`` (``threads`` arrays at a time); with ``repair_bad``,
    clear each bad chunk and the completion record that covers it (``gbdist.store.check``)."""
    with store_lock(store) if repair_bad else nullcontext():
        group = open_group(store, mode="a" if repair_bad else "r", storage_options=storage_options)
        arrays = store_arrays(group)
        report = CheckReport(store, n_arrays=len(arrays),
                             n_chunks=int(sum(np.prod(a.cdata_shape) for _, a in arrays)))
        with ThreadPoolExecutor(threads) as pool:
            found = pool.map(lambda item: (item[0], bad_chunks(item[1])), arrays)
            for path, bad in with_progress(found, "check arrays", total=len(arrays)):
                report.bad.extend((path, index) for index in bad)
        if repair_bad and report.bad:
            repair(group, store, report)
    return report
