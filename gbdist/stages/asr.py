"""ASR stage driver: per-GB means of the unit SOAP rows, one task per ``soap`` chunk."""

from __future__ import annotations

import time

import zarr

from gbdist.compute.asr import asr_matrix, gb_row_sums
from gbdist.errors import StoreError
from gbdist.stages.progress import as_completed_with_progress
from gbdist.store.schema import RowPlan, mark_stage, open_group, stage_done, write_array


def chunk_gb_sums(k: int, store: str, storage_options: dict | None, chunk_rows: int):
    """Worker task: per-GB sums of ``soap`` chunk k."""
    group = zarr.open_group(store, mode="r", storage_options=storage_options)
    offsets = group["gb/offset"][:]
    start, stop = RowPlan(offsets, chunk_rows).chunk(k)
    return k, gb_row_sums(group["soap"][start:stop], start, offsets)


def run_asr_stage(client, store: str, storage_options: dict | None = None, force: bool = False) -> float:
    """Compute ``asr`` from ``soap``; returns the wall time (0 if it was already done)."""
    group = open_group(store, mode="a", storage_options=storage_options)
    if stage_done(group, "asr") and not force:
        return 0.0
    if not stage_done(group, "soap"):
        raise StoreError(f"{store}: the soap stage is not complete; run it first")
    t0 = time.perf_counter()
    offsets = group["gb/offset"][:]
    soap = group["soap"]
    chunk_rows = soap.chunks[0]
    n_chunks = RowPlan(offsets, chunk_rows).n_chunks
    futures = client.map(chunk_gb_sums, range(n_chunks), store=store,
                         storage_options=storage_options, chunk_rows=chunk_rows)
    parts = sorted((f.result() for f in as_completed_with_progress(futures, "asr")), key=lambda r: r[0])
    asr = asr_matrix([p for _, p in parts], offsets, soap.shape[1])
    write_array(group, "asr", asr, ["gb", "feature"])
    wall = time.perf_counter() - t0
    mark_stage(group, "asr", wall_s=wall)
    return wall
