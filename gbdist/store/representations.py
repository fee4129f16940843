"""Per-GB representations read back from a store: the ASR, the areal ASR and the LER of one eps.

Each is an (n_gb, n_feat) float32 matrix with feature names: ``soap<k>`` (ASR),
``soap<k>_area`` (ASR_area) and ``lae<k>`` (LER, k the unique-LAE index).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import zarr

from gbdist.store.schema import lae_path, resolve_eps, stage_done

REPRESENTATIONS = ("ASR", "ASR_area", "LER")


def region_thickness(group: zarr.Group) -> np.ndarray:
    """Thickness t (Å) of each GB's selected region, (n_gb,) float32: n_lae / (atomic density ×
    boundary area), ``gb/thickness`` as the selection measured it (extent + 2 × pad for the extent
    rule); a store written before it records the extent, and was selected by that rule. NaN where the
    boundary area is not defined."""
    if "gb/thickness" in group:
        return group["gb/thickness"][:].astype(np.float32)
    extent = group["gb/extent"][:]
    pad = float(group.attrs["params"]["select"]["pad"])
    return (extent[:, 1] - extent[:, 0] + 2 * pad).astype(np.float32)


def area_problem(group: zarr.Group) -> str | None:
    """Why the store has no ASR_area (None if it has one): some structure has no boundary area."""
    thickness = region_thickness(group)
    undefined = np.flatnonzero(~np.isfinite(thickness))
    if not len(undefined):
        return None
    ids = [str(i) for i in group["gb/id"].get_orthogonal_selection(undefined[:3])]
    return (f"ASR_area needs a boundary area, defined for one or two flat boundaries in a cell; {len(undefined)} "
            f"structure(s) have none (e.g. {', '.join(ids)}: a polycrystal, a curved boundary or no flat layer)")


def read_representations(group: zarr.Group, eps: float | None = None,
                         store: str = "store") -> dict[str, tuple[np.ndarray, list[str]]]:
    """The per-GB representations in a store: {"ASR", "ASR_area", "LER"} → (X, names).

    X is (n_gb, n_feat) float32. ``ASR_area`` is the ASR times the thickness t (Å) of the
    selected slab: the sum of a GB's unit SOAP vectors per unit GB area, over the atomic
    density (n_lae / A = ρ t). Unlike the mean, it is extensive like the GB energy per area.
    The LER is that of ``eps`` (default: the store's chosen eps). A representation whose
    stage has not run is left out, and so is ASR_area where a structure has no boundary area
    (``area_problem``); an ``eps`` given without a finished run is an error.
    """
    out = {}
    if stage_done(group, "asr"):
        asr = group["asr"][:]
        out["ASR"] = (asr, [f"soap{k}" for k in range(asr.shape[1])])
        if area_problem(group) is None:
            out["ASR_area"] = (asr * region_thickness(group)[:, None], [f"soap{k}_area" for k in range(asr.shape[1])])
    if eps is not None or group.attrs.get("lae_runs"):
        eps = resolve_eps(group, store, eps)
        ler = group[lae_path(eps, "ler")][:]
        out["LER"] = (ler, [f"lae{k}" for k in range(ler.shape[1])])
    return out


def representation_array(store: str, rep: str, eps: float | None, storage_options: dict | None,
                         group: zarr.Group) -> da.Array:
    """The representation as a dask array read from the store: ``asr`` (or ASR × thickness) or the LER."""
    if rep == "LER":
        return da.from_zarr(store, component=lae_path(eps, "ler"), storage_options=storage_options)
    asr = da.from_zarr(store, component="asr", storage_options=storage_options)
    if rep == "ASR_area":
        asr = asr * da.from_array(region_thickness(group))[:, None]
    return asr
