"""A store as a lazy ``xarray.Dataset``: named dimensions, GB ids as coordinates, dask arrays.

Nothing large is read when the dataset is opened: every array is a dask array over the
Zarr chunks; only the GB ids and the row → GB map (to label rows by GB) are read.
"""

from __future__ import annotations

import json

import dask.array as da
import numpy as np
import xarray as xr
import zarr

from gbdist.store.schema import (
    BLOCK_ENERGY,
    GB_SELECTION,
    block_energy_columns,
    block_energy_path,
    chosen_eps,
    lae_group_name,
    open_group,
    resolve_eps,
    stage_done,
)
from gbdist.store.structures import (
    ATOM_ID,
    ATOM_START,
    CELL,
    GRID,
    NUMBER,
    ORIGIN,
    PBC,
    POSITION,
    SITE,
    STRUCTURE_TYPE,
    column_name,
    column_path,
    has_structures,
)

# store array → (dataset variable, dimensions); the names users see
_PLAN = {"gb/n_atoms": ("n_atoms", ("gb",)), "gb/normal": ("normal", ("gb",)),
         "gb/extent": ("extent", ("gb", "bound")), "lae/atom": ("centre", ("lae",)), "lae/cna": ("cna", ("lae",)),
         "lae/soap_norm": ("soap_norm", ("lae",)), "soap": ("soap", ("lae", "feature"))}
_STRUCTURES = {POSITION: ("position", ("atom", "xyz")), NUMBER: ("number", ("atom",)), ATOM_ID: ("atom_id", ("atom",)),
               STRUCTURE_TYPE: ("structure_type", ("atom",)), ATOM_START: ("atom_start", ("gb",)),
               CELL: ("cell", ("gb", "vector", "xyz")), ORIGIN: ("origin", ("gb", "xyz")), PBC: ("pbc", ("gb", "vector")),
               GRID: ("grid", ("gb", "vector")), SITE: ("site", ("lae",))}
_LAE_PLAN = {"label": ("label", ("lae",)), "similarity": ("similarity", ("lae",)), "ler": ("ler", ("gb", "unique")),
             "unique/soap": ("unique_soap", ("unique", "feature")), "unique/count": ("unique_count", ("unique",)),
             "unique/gb": ("unique_gb", ("unique",)), "unique/atom": ("unique_atom", ("unique",)),
             "unique/source": ("unique_source", ("unique",))}


def _lazy(array: zarr.Array) -> da.Array:
    return da.from_zarr(array)


def _strings(array: zarr.Array) -> np.ndarray:
    """A small variable-length string array, read whole, as fixed-width numpy strings."""
    return np.array(array[:].tolist(), dtype=str)


def open_store(url: str, eps: float | None = None, storage_options: dict | None = None) -> xr.Dataset:
    """Open a gbdist store as an ``xarray.Dataset`` backed by dask (nothing large is read).

    Dimensions: ``gb`` (coordinate: the structure ids), ``lae`` (one row per local atomic
    environment; coordinate ``lae_gb``, the id of its GB, indexed so that
    ``ds.soap.sel(lae_gb="ni.p1")`` gives that GB's SOAP rows), ``feature`` (SOAP
    components), ``unique`` (unique LAEs at ``eps``, default the store's chosen eps) and
    ``bound`` (lower / upper extent, Å). Variables: ``soap`` (lae, feature) float32 unit
    vectors, ``asr`` (gb, feature), ``centre`` (the atom id of each row's centre), ``site`` (its row
    in the ``atom`` dimension), ``cna``, ``soap_norm``, ``n_atoms``, ``normal``,
    ``extent``, ``rule``, ``lattice``, ``lattice_constant``, ``host``, ``thickness`` (stores from before
    structure types lack these five), ``source`` (a coordinate) and, where an LAE run exists, ``label``,
    ``similarity``, ``ler`` (gb, unique) and ``unique_*`` (with ``unique_<column>_count``, ``_mean``
    and ``_std``, the building-block energies of a per-atom column, after ``gbdist site-model``).
    The structures: dimension ``atom`` (every atom of every boundary; boundary i's are rows
    ``atom_start[i]`` to ``atom_start[i] + n_atoms[i]``) with ``position``
    (atom, xyz) Å, ``number``, ``atom_id``, ``structure_type`` and ``atom_<column>`` for each numeric
    per-atom column of the inputs; per boundary ``cell`` (gb, vector, xyz), ``origin``, ``pbc`` and
    ``grid`` (its spatial domains). ``gbdist.store.structures.structure_atoms`` gives one boundary as
    an ``ase.Atoms``. The store's parameters are in ``ds.attrs``.

    Raises
    ------
    StoreError
        If there is no store at ``url``, or no finished LAE run at ``eps``.
    """
    group = open_group(url, storage_options=storage_options)
    ids = _strings(group["gb/id"]) if "gb" in group else np.zeros(0, str)
    data, coords = {}, {"gb": ("gb", ids)}
    if "gb" in group:
        coords["source"] = ("gb", _strings(group["gb/source"]))
    if "soap" in group:
        coords["lae_gb"] = ("lae", ids[group["lae/gb"][:]])
        plan = dict(_PLAN) | ({"asr": ("asr", ("gb", "feature"))} if stage_done(group, "asr") else {})
        for path, (name, dims) in plan.items():
            data[name] = (dims, _lazy(group[path]))
        for name, path in GB_SELECTION.items():
            if path in group:  # stores written before structure types lack them
                data[name] = ("gb", _strings(group[path]) if name in ("rule", "lattice", "host") else _lazy(group[path]))
    if has_structures(group):
        for path, (name, dims) in _STRUCTURES.items():
            data[name] = (dims, _lazy(group[path]))
        for column in group.attrs.get("atom_columns", []):
            data[f"atom_{column_name(column)}"] = ("atom", _lazy(group[column_path(column)]))
    attrs = {"store": url, "schema_version": group.attrs.get("schema_version"),
             "gbdist_version": group.attrs.get("gbdist_version"),
             "params": json.dumps(group.attrs.get("params", {})), "species": list(group.attrs.get("species", [])),
             "stages": json.dumps(group.attrs.get("stages", {}))}
    if eps is not None or chosen_eps(group) is not None:
        eps = resolve_eps(group, url, eps)
        lae = group[lae_group_name(eps)]
        for path, (name, dims) in _LAE_PLAN.items():
            data[name] = (dims, _lazy(lae[path]))
        for column in block_energy_columns(group, eps):  # after gbdist site-model
            for stat in BLOCK_ENERGY:
                data[f"unique_{column}_{stat}"] = ("unique", _lazy(group[block_energy_path(eps, column, stat)]))
        attrs |= {"eps": eps, "chosen_eps": chosen_eps(group)}
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    return ds.set_xindex("lae_gb") if "lae_gb" in ds.coords else ds
