"""Repair a store's bad chunks: forget what each held, so a rerun recomputes it (the check that
finds them, ``gbdist.workflows.check``, decodes every chunk with ``schema.bad_chunks``).

A chunk is *bad* when it is stored but fails to decode (its crc32c checksum, or its compressor,
refuses it: a truncated or corrupt file). Repair rewrites each bad chunk as never written and
clears the completion record that covers it, chosen by the array that holds it:

- ``soap``, ``lae/soap_norm``, ``partial/*``, ``progress/soap*``: that SOAP chunk's flag (a rerun of
  the soap stage recomputes exactly those chunks);
- ``asr``: the asr stage (recomputed from the stored partial sums);
- ``gb/*``, ``lae/gb|atom|cna`` (the plan): the select stage, and with it every SOAP chunk;
- an LAE run's arrays (its group per eps): that run; ``map/*``: the map; ``assigned/*``:
  the prediction's assignment (``gbdist predict`` redoes it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import zarr

from gbdist.store.schema import (
    ASR_PARTIAL_GB,
    ASR_PARTIAL_SUM,
    LAE_GROUP_PREFIX,
    MAP_GROUP,
    clear_stage,
    lae_runs,
)

SOAP_CHUNK_ARRAYS = ("soap", "lae/soap_norm", ASR_PARTIAL_GB, ASR_PARTIAL_SUM, "progress/soap_cpu", "progress/soap")
"""Arrays whose chunk k along the first axis belongs to SOAP chunk k (one task writes them all)."""

PLAN_ARRAYS = ("gb/", "lae/gb", "lae/atom", "lae/cna")


@dataclass
class CheckReport:
    """What a check found (and, with repair, did)."""

    store: str
    n_arrays: int = 0
    n_chunks: int = 0
    bad: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    """What each repair cleared, in words (what a rerun will recompute)."""
    rerun: list[str] = field(default_factory=list)
    """Commands to run after the repair."""


def store_arrays(group: zarr.Group) -> list[tuple[str, zarr.Array]]:
    """Every array of a store, (path, array), sorted by path."""
    return sorted((path, a) for path, a in group.members(max_depth=None) if isinstance(a, zarr.Array))


def repair(group: zarr.Group, store: str, arrays: dict[str, zarr.Array], report: CheckReport) -> None:
    """Rewrite each of ``report.bad`` (chunks of ``arrays``, by path) as never written and clear the
    completion record that covers it; say in ``report`` what was cleared and what to rerun."""
    soap_chunks, stages, runs, other = set(), set(), set(), []
    for path, index in report.bad:
        array = arrays[path]
        array.blocks[index] = np.full(_block_shape(array, index), array.fill_value)  # as if never written
        if path in SOAP_CHUNK_ARRAYS:
            soap_chunks.add(index[0])
        elif path == "asr":
            stages.add("asr")
        elif path.startswith(PLAN_ARRAYS):
            stages.update({"select", "soap", "asr"})
        elif path.startswith(LAE_GROUP_PREFIX):
            runs.add(path.split("/")[0][len(LAE_GROUP_PREFIX):])
        elif path.startswith(MAP_GROUP + "/"):
            stages.add("map")
        else:
            other.append(path)
    if soap_chunks:
        flags = group["progress/soap"]
        for k in sorted(soap_chunks):
            flags[k] = 0
        stages.add("soap")
        report.repaired.append(f"SOAP chunk(s) {sorted(soap_chunks)}: flags cleared")
        report.rerun.append(f"gbdist soap ... --store {store} (or gbdist run JOB): recomputes those chunks")
    if stages:
        clear_stage(group, *stages)
        report.repaired.append(f"stage(s) {sorted(stages)} marked not done")
        if "asr" in stages and "soap" not in stages:
            report.rerun.append(f"gbdist run JOB (its asr stage), or gbdist soap ... --store {store}: recomputes the ASR")
        if "map" in stages:
            report.rerun.append(f"gbdist map --store {store} ...: recomputes the map")
    if runs:
        kept = {k: v for k, v in lae_runs(group).items() if k not in runs}
        group.attrs["lae_runs"] = kept
        report.repaired.append(f"LAE run(s) at eps {sorted(runs)} forgotten")
        report.rerun.extend(f"gbdist lae --store {store} --eps {eps}: recomputes that run" for eps in sorted(runs))
    if other:
        report.repaired.append(f"array(s) {sorted(set(other))}: bad chunks cleared; rerun the command that wrote them")


def _block_shape(array: zarr.Array, index: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of chunk ``index`` of ``array`` (edge chunks are cut at the array's shape)."""
    return tuple(min(c, s - i * c) for c, s, i in zip(array.chunks, array.shape, index))
