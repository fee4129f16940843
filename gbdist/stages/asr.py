"""ASR stage driver: per-GB means of the unit SOAP rows.

The SOAP stage writes every chunk's per-GB sums (``partial/asr_*``), so the ASR is their
reduction and reads no ``soap`` row. Stores written without them fall back to one task per
``soap`` chunk that reads its rows.
"""

from __future__ import annotations

import time

from gbdist.compute.asr import asr_matrix, gb_row_sums
from gbdist.errors import StoreError
from gbdist.stages.progress import as_completed_with_progress
from gbdist.store.schema import (
    GB_OFFSET,
    RowPlan,
    StoreArrays,
    has_asr_partials,
    mark_stage,
    open_group,
    read_asr_partials,
    stage_done,
    write_array,
)


def chunk_gb_sums(k: int, store: str, storage_options: dict | None, chunk_rows: int):
    """Worker task: (k, per-GB sums of ``soap`` chunk k, rows read)."""
    group = StoreArrays(store, "r", storage_options)
    offsets = group[GB_OFFSET][:]
    start, stop = RowPlan(offsets, chunk_rows).chunk(k)
    return k, gb_row_sums(group["soap"][start:stop], start, offsets), stop - start


def run_asr_stage(client, store: str, storage_options: dict | None = None, force: bool = False) -> float:
    """Compute ``asr``; returns the wall time (0 if it was already done).

    The stage record holds ``soap_passes``: rows of ``soap`` read ÷ rows in the store
    (0 from the partial sums, 1 for an older store).
    """
    group = open_group(store, mode="a", storage_options=storage_options)
    if stage_done(group, "asr") and not force:
        return 0.0
    if not stage_done(group, "soap"):
        raise StoreError(f"{store}: the soap stage is not complete; run it first")
    t0 = time.perf_counter()
    offsets = group[GB_OFFSET][:]
    soap = group["soap"]
    plan = RowPlan(offsets, soap.chunks[0])
    rows_read = 0
    if has_asr_partials(group):
        partials = read_asr_partials(group, plan)
    else:
        futures = client.map(chunk_gb_sums, range(plan.n_chunks), store=store,
                             storage_options=storage_options, chunk_rows=plan.chunk_rows)
        parts = sorted((f.result() for f in as_completed_with_progress(futures, "asr")), key=lambda r: r[0])
        partials, rows_read = [p for _, p, _ in parts], sum(n for _, _, n in parts)
    write_array(group, "asr", asr_matrix(partials, offsets, soap.shape[1]), ["gb", "feature"])
    wall = time.perf_counter() - t0
    mark_stage(group, "asr", wall_s=wall, soap_passes=rows_read / max(int(offsets[-1]), 1))
    return wall
