"""Per-atom models from stores larger than the workers' memory: XGBoost's external-memory training.

One Dask task per worker, joined by XGBoost's collective (a ``RabitTracker`` on the driver): each
streams its share of the ``soap`` chunks from Zarr through a ``DataIter`` into an
``ExtMemQuantileDMatrix``, whose quantised pages go to the worker's local directory. A worker
holds one chunk of rows (16 MB at 4,096 × 1,014 float32) and the pages it trains on, whatever
the number of rows; ``xgboost.dask``'s ``DaskQuantileDMatrix`` instead keeps every row of its
share in memory while it trains.
"""

from __future__ import annotations

import glob
import os
import uuid
from dataclasses import dataclass

import numpy as np
import xgboost as xgb
from xgboost import collective

from gbdist.learning.models import cut_at_best
from gbdist.store.schema import SOAP, open_group


@dataclass
class ChunkShare:
    """A worker's rows: ``chunks`` [(lo, hi)] of ``soap`` row ranges, the rows used in each (bool
    masks) and their values (float32), one entry per chunk; all of them streamed ``repeat`` times
    (a scale-up: the same rows dealt again, read from the store again, as XGBoost's pages grow)."""

    chunks: list[tuple[int, int]]
    masks: list[np.ndarray]
    values: list[np.ndarray]
    repeat: int = 1


class ChunkRows(xgb.DataIter):
    """The masked rows of a ``ChunkShare``'s chunks, one chunk a batch, read from the store."""

    def __init__(self, store: str, storage_options: dict | None, share: ChunkShare, cache: str):
        self.soap = open_group(store, storage_options=storage_options)[SOAP]
        self.share = share
        self.k = 0
        super().__init__(cache_prefix=cache)

    def next(self, input_data) -> bool:
        n = len(self.share.chunks)
        if self.k == n * self.share.repeat:
            return False
        i = self.k % n
        lo, hi = self.share.chunks[i]
        input_data(data=self.soap[lo:hi][self.share.masks[i]], label=self.share.values[i])
        self.k += 1
        return True

    def reset(self) -> None:
        self.k = 0


def shares(rows: np.ndarray, values: np.ndarray, chunk_rows: int, n_workers: int) -> list[ChunkShare]:
    """The chunks holding any of ``rows`` (bool (n,)), dealt round-robin to at most ``n_workers``
    shares (each with at least one chunk), with their masks and values (n,)."""
    n = len(rows)
    bounds = [(lo, min(lo + chunk_rows, n)) for lo in range(0, n, chunk_rows)]
    used = [(lo, hi) for lo, hi in bounds if rows[lo:hi].any()]
    k = max(1, min(n_workers, len(used)))
    out = [ChunkShare([], [], []) for _ in range(k)]
    for i, (lo, hi) in enumerate(used):
        share = out[i % k]
        share.chunks.append((lo, hi))
        share.masks.append(rows[lo:hi].copy())
        share.values.append(values[lo:hi][rows[lo:hi]].astype(np.float32))
    return out


def _train_share(rabit_args: dict, store: str, storage_options: dict | None, fit: ChunkShare, valid: ChunkShare,
                 params: dict, rounds: int, early_stopping: int, max_bin: int) -> bytes | None:
    """Worker task: train with the other workers' tasks; rank 0 returns the booster (UBJSON)."""
    from distributed import get_worker

    worker = get_worker()
    cache = os.path.join(worker.local_directory, f"xgb-extmem-{uuid.uuid4().hex}")
    nthread = worker.state.nthreads
    try:
        with collective.CommunicatorContext(**rabit_args):
            dfit = xgb.ExtMemQuantileDMatrix(ChunkRows(store, storage_options, fit, cache + "-fit"), max_bin=max_bin,
                                             nthread=nthread)
            dvalid = xgb.ExtMemQuantileDMatrix(ChunkRows(store, storage_options, valid, cache + "-valid"), ref=dfit,
                                               max_bin=max_bin, nthread=nthread)
            booster = xgb.train(params | {"nthread": nthread}, dfit, num_boost_round=rounds,
                                evals=[(dvalid, "valid")], early_stopping_rounds=early_stopping, verbose_eval=False)
            del dfit, dvalid
            return bytes(cut_at_best(booster).save_raw("ubj")) if collective.get_rank() == 0 else None
    finally:  # the pages (about a byte per training value) are this fit's alone
        for path in glob.glob(cache + "*"):
            os.remove(path)


def fit_external(client, store: str, storage_options: dict | None, values: np.ndarray, fit_rows: np.ndarray,
                 valid_rows: np.ndarray, chunk_rows: int, params: dict, rounds: int, early_stopping: int,
                 max_bin: int, repeat: int = 1) -> xgb.Booster:
    """Train on ``fit_rows`` (bool (n,)) of the store's ``soap`` rows with ``values`` (n,), stopping on
    ``valid_rows``, every worker streaming its chunks; returns the booster cut at its best round.
    ``repeat`` > 1 deals every training row that many times (the bench's scale-up of the fit)."""
    from distributed.comm import get_address_host
    from distributed.utils import get_ip
    from xgboost.tracker import RabitTracker

    workers = sorted(client.scheduler_info()["workers"])
    fit_shares = shares(fit_rows, values, chunk_rows, len(workers))
    valid_shares = shares(valid_rows, values, chunk_rows, len(workers))
    n = min(len(fit_shares), len(valid_shares))  # every worker in the ring needs rows of both
    fit_shares, valid_shares = _merge(fit_shares, n), _merge(valid_shares, n)
    for share in fit_shares:
        share.repeat = repeat
    # the tracker runs here: workers reach it at this machine's address on the route to the scheduler
    tracker = RabitTracker(n_workers=n, host_ip=get_ip(get_address_host(client.scheduler.address)))
    tracker.start()
    futures = [client.submit(_train_share, tracker.worker_args(), store, storage_options, fit_shares[i], valid_shares[i],
                             params, rounds, early_stopping, max_bin, workers=[workers[i]], allow_other_workers=False,
                             pure=False) for i in range(n)]
    raw = [r for r in client.gather(futures) if r is not None]
    tracker.wait_for(60)
    booster = xgb.Booster()
    booster.load_model(bytearray(raw[0]))
    return booster


def _merge(parts: list[ChunkShare], n: int) -> list[ChunkShare]:
    """``parts`` folded into ``n`` shares (the extra ones joined to the first ``n``)."""
    out = parts[:n]
    for i, extra in enumerate(parts[n:]):
        target = out[i % n]
        target.chunks += extra.chunks
        target.masks += extra.masks
        target.values += extra.values
    return out
