"""Per-GB representations computed from the store's SOAP rows: the ASR (and later the LER)."""

from __future__ import annotations

import numpy as np


def gb_row_sums(rows: np.ndarray, row_start: int, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums of ``rows`` (a block starting at row ``row_start``) per GB.

    Returns (gb positions (k,), float64 sums (k, n_feat)) for the k GBs the block touches.
    """
    stop = row_start + len(rows)
    first = int(np.searchsorted(offsets, row_start, side="right")) - 1
    last = int(np.searchsorted(offsets, stop, side="left"))
    gbs = np.arange(first, last)
    cuts = np.clip(offsets[gbs], row_start, stop) - row_start
    sums = np.add.reduceat(rows.astype(np.float64), cuts, axis=0)
    keep = np.diff(np.append(cuts, len(rows))) > 0
    return gbs[keep], sums[keep]


def asr_matrix(partials: list[tuple[np.ndarray, np.ndarray]], offsets: np.ndarray, n_feat: int) -> np.ndarray:
    """ASR (n_gb, n_feat) float32: mean unit SOAP row per GB from per-block sums (in block order)."""
    total = np.zeros((len(offsets) - 1, n_feat))
    for gbs, sums in partials:
        total[gbs] += sums
    counts = np.diff(offsets).astype(np.float64)
    return (total / counts[:, None]).astype(np.float32)


def region_thickness(group) -> np.ndarray:
    """Thickness (Å) of each GB's selected slab along its normal: extent + 2 × pad; (n_gb,)."""
    extent = group["gb/extent"][:]
    pad = float(group.attrs["params"]["select"]["pad"])
    return (extent[:, 1] - extent[:, 0] + 2 * pad).astype(np.float32)


def read_representations(group, eps: float | None = None) -> dict[str, tuple[np.ndarray, list[str]]]:
    """The per-GB representations in a store: {"ASR", "ASR_area", "LER"} → (X, names).

    X is (n_gb, n_feat) float32. ``ASR_area`` is the ASR times the thickness t (Å) of the
    selected slab: the sum of a GB's unit SOAP vectors per unit GB area, over the atomic
    density (n_lae / A = ρ t). Unlike the mean, it is extensive like the GB energy per area. The LER is that of ``eps`` (default: the store's
    ``lae_default`` run); its feature names are ``lae<k>``, k the unique-LAE index. A
    representation whose stage has not run is left out.
    """
    from gbdist.errors import StoreError
    from gbdist.stages.lae import lae_done, lae_group_name
    from gbdist.store import stage_done

    out = {}
    if stage_done(group, "asr"):
        asr = group["asr"][:]
        out["ASR"] = (asr, [f"soap{k}" for k in range(asr.shape[1])])
        out["ASR_area"] = (asr * region_thickness(group)[:, None], [f"soap{k}_area" for k in range(asr.shape[1])])
    if eps is None and "lae_default" in group.attrs:
        eps = float(group.attrs["lae_default"])
    if eps is not None:
        if not lae_done(group, eps):
            runs = ", ".join(group.attrs.get("lae_runs", {})) or "none"
            raise StoreError(f"no finished LAE run at eps {eps} in the store (runs: {runs})")
        ler = group[f"{lae_group_name(eps)}/ler"][:]
        out["LER"] = (ler, [f"lae{k}" for k in range(ler.shape[1])])
    return out
