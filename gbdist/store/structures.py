"""The structures in the store: every atom of every selected input, parsed once at selection and
read back from here by every later stage (SOAP, pictures, maps, prediction), so a store works
without its input files, and a SOAP task reads only the atoms it needs.

Arrays (dimension ``atom``; structure i's atoms are the rows ``gb/atom_start[i]`` to
``gb/atom_start[i] + gb/n_atoms[i]``, in domain order, within a domain in file order):

==========================  ================  =======  ==============================================
array                       shape             dtype    meaning
==========================  ================  =======  ==============================================
``atoms/position``          (atom, xyz)       float64  Å, Cartesian, as in the file (not wrapped)
``atoms/number``            (atom,)           uint8    atomic number
``atoms/id``                (atom,)           int64    atom id in the file
``atoms/structure_type``    (atom,)           int8     structure type (codes of ``lae/cna``)
``atoms/column/<name>``     (atom,)           float64  every other numeric per-atom column of the
                                                       inputs (``type``, ``c_pe``, …); NaN in a
                                                       structure whose file has no such column
``gb/atom_start``           (gb,)             int64    first atom row of each structure
``gb/cell``                 (gb, vector, xyz) float64  Å, the cell vectors (rows)
``gb/origin``               (gb, xyz)         float64  Å, the box's lower corner
``gb/pbc``                  (gb, vector)      bool     periodicity along each cell vector
``gb/grid``                 (gb, vector)      int32    spatial domains along each cell vector
``gb/domain_start``         (gb,)             int64    first entry of structure i in ``domain/offset``
``domain/offset``           (domain_edge,)    int64    its domains' atom offsets (from its first atom),
                                                       n_domains + 1 entries per structure
``lae/site``                (lae,)            int64    atom row of each LAE's centre
==========================  ================  =======  ==============================================

Writes of different structures meet only in the chunk two of them share; that chunk is written
under a Dask lock named by the store and chunk index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zarr

from gbdist.compute.boundary_energy import boundary_area
from gbdist.compute.domains import cached_domain, environment
from gbdist.errors import StoreError
from gbdist.store.schema import GB_EXTENT, GB_NORMAL, StoreArrays, create_store_array, write_array
from gbdist.structure import Structure

ATOM_CHUNK = 1 << 16
"""Atoms per chunk of the ``atoms/*`` arrays (1.5 MB of positions)."""

POSITION, NUMBER, ATOM_ID, STRUCTURE_TYPE = "atoms/position", "atoms/number", "atoms/id", "atoms/structure_type"
COLUMN_GROUP = "atoms/column"
ATOM_START, CELL, ORIGIN, PBC, GRID = "gb/atom_start", "gb/cell", "gb/origin", "gb/pbc", "gb/grid"
DOMAIN_START, DOMAIN_OFFSET = "gb/domain_start", "domain/offset"
SITE = "lae/site"


def column_name(name: str) -> str:
    """A per-atom column's array name: the file's name, with '/' (a Zarr path separator) as '_'."""
    return name.replace("/", "_")


def column_path(name: str) -> str:
    return f"{COLUMN_GROUP}/{column_name(name)}"


def numeric_columns(structure: Structure) -> list[str]:
    """The structure's numeric per-atom columns (other than id, element, positions)."""
    return sorted(k for k, v in structure.extras.items() if np.asarray(v).dtype.kind in "biuf")


def atom_columns(group: zarr.Group) -> list[str]:
    """The per-atom columns the store holds (of its inputs), by their names in the files."""
    return list(group.attrs.get("atom_columns", []))


def column_at(group: zarr.Group, name: str, sites: np.ndarray) -> np.ndarray:
    """(len(sites),) float64, per-atom column ``name`` at the atom rows ``sites`` (any order)."""
    return group[column_path(name)].get_orthogonal_selection(np.asarray(sites, np.int64))


def site_depths(group: zarr.Group, sites: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(len(sites),) float64 Å: each atom row's position along the cell axis ``normals`` (one per
    site; −1, no flat boundary, gives NaN)."""
    positions = group[POSITION].get_orthogonal_selection((np.asarray(sites, np.int64), slice(None)))
    depth = positions[np.arange(len(positions)), np.clip(normals, 0, 2)]
    return np.where(np.asarray(normals) >= 0, depth, np.nan)


def boundary_areas(group: zarr.Group) -> np.ndarray:
    """(gb,) float64 Å², each structure's boundary area (the cell face normal to ``gb/normal``); NaN
    where it has no flat boundary normal to a cell vector (the distance rule)."""
    cells, normals, extents = group[CELL][:], group[GB_NORMAL][:], group[GB_EXTENT][:]
    return np.array([boundary_area(cell, int(n)) if n >= 0 and np.isfinite(e).all() else np.nan
                     for cell, n, e in zip(cells, normals, extents)])


def has_structures(group: zarr.Group) -> bool:
    """True if the store holds its structures (stores written before did not)."""
    return POSITION in group and SITE in group


def require_structures(group: zarr.Group, url: str) -> None:
    """Refuse a store written before stores held their structures.

    Raises
    ------
    StoreError
        Saying to recompute it.
    """
    if not has_structures(group):
        raise StoreError(f"{url}: written before gbdist stores held their structures (no {POSITION}); recompute it "
                         "into a new store")


@dataclass(frozen=True)
class StructureLayout:
    """Where structure ``gb``'s atoms are in the store, and its cell (made by the driver, sent to tasks).

    atom_start, n_atoms : its rows of ``atoms/*``.
    cell : (3, 3) Å; origin : (3,) Å; pbc : (3,) bool; grid : (3,) domains per cell vector.
    domains : (n_domains + 1,) int64, atom offsets of its domains from ``atom_start``.
    """

    gb: int
    atom_start: int
    n_atoms: int
    cell: np.ndarray
    origin: np.ndarray
    pbc: np.ndarray
    grid: np.ndarray
    domains: np.ndarray

    def rows(self, domain: int) -> tuple[int, int]:
        """Atom rows [lo, hi) of ``domain``."""
        return self.atom_start + int(self.domains[domain]), self.atom_start + int(self.domains[domain + 1])


def layouts(group: zarr.Group) -> list[StructureLayout]:
    """Every structure's layout, in GB order (one read of each per-structure array)."""
    start, n_atoms = group[ATOM_START][:], group["gb/n_atoms"][:]
    cells, origins, pbcs, grids = group[CELL][:], group[ORIGIN][:], group[PBC][:], group[GRID][:]
    first, offsets = group[DOMAIN_START][:], group[DOMAIN_OFFSET][:]
    out = []
    for gb in range(len(start)):
        n_domains = int(np.prod(grids[gb]))
        out.append(StructureLayout(gb, int(start[gb]), int(n_atoms[gb]), cells[gb], origins[gb], pbcs[gb].astype(bool),
                                   grids[gb].astype(np.int64), offsets[first[gb]:first[gb] + n_domains + 1]))
    return out


def layout_of(group: zarr.Group | StoreArrays, gb: int) -> StructureLayout:
    """Structure ``gb``'s layout, reading only its entries."""
    first, grid = int(group[DOMAIN_START][gb]), group[GRID][gb].astype(np.int64)
    return StructureLayout(gb, int(group[ATOM_START][gb]), int(group["gb/n_atoms"][gb]), group[CELL][gb],
                           group[ORIGIN][gb], group[PBC][gb].astype(bool), grid,
                           group[DOMAIN_OFFSET][first:first + int(np.prod(grid)) + 1])


def gb_structure(group: zarr.Group, gb: int, columns: list[str] | None = None) -> Structure:
    """Structure ``gb`` (its position) from the store, named by its id; ``extras`` hold its
    ``structure_type`` and ``columns`` (None: every stored column)."""
    columns = atom_columns(group) if columns is None else columns
    return read_structure(group, layout_of(group, gb), str(group["gb/id"][gb]), columns)


def atom_starts(n_atoms: np.ndarray) -> np.ndarray:
    """(gb,) int64, the first atom row of each structure: one after the other, no gap."""
    return np.concatenate([[0], np.cumsum(n_atoms)[:-1]]).astype(np.int64)


def write_layout(group: zarr.Group, selected: list[dict], columns: list[str]) -> np.ndarray:
    """Create the ``atoms/*`` arrays (empty) and write each structure's place, cell and domains from
    the selection records (``n_atoms``, ``cell``, ``origin``, ``pbc``, ``grid``, ``domains``);
    returns the atom starts."""
    n_atoms = np.array([s["n_atoms"] for s in selected], np.int64)
    start = atom_starts(n_atoms)
    total = int(n_atoms.sum())
    write_array(group, ATOM_START, start, ["gb"])
    write_array(group, CELL, np.array([s["cell"] for s in selected], np.float64).reshape(-1, 3, 3),
                ["gb", "vector", "xyz"])
    write_array(group, ORIGIN, np.array([s["origin"] for s in selected], np.float64).reshape(-1, 3), ["gb", "xyz"])
    write_array(group, PBC, np.array([s["pbc"] for s in selected], bool).reshape(-1, 3), ["gb", "vector"])
    write_array(group, GRID, np.array([s["grid"] for s in selected], np.int32).reshape(-1, 3), ["gb", "vector"])
    sizes = np.array([len(s["domains"]) for s in selected], np.int64)
    write_array(group, DOMAIN_START, atom_starts(sizes), ["gb"])
    write_array(group, DOMAIN_OFFSET, np.concatenate([s["domains"] for s in selected]).astype(np.int64),
                ["domain_edge"])
    chunk = (ATOM_CHUNK,)
    for path, shape, dtype, fill, dims in (
        (POSITION, (total, 3), np.float64, 0.0, ["atom", "xyz"]),
        (NUMBER, (total,), np.uint8, 0, ["atom"]),
        (ATOM_ID, (total,), np.int64, 0, ["atom"]),
        (STRUCTURE_TYPE, (total,), np.int8, 0, ["atom"]),
        *((column_path(c), (total,), np.float64, np.nan, ["atom"]) for c in columns),
    ):
        create_store_array(group, path, shape=shape, chunks=chunk + shape[1:], dtype=dtype, fill_value=fill,
                           dimension_names=dims)
    group.attrs["atom_columns"] = columns
    return start


def _lock(url: str, chunk: int):
    """A Dask lock for atom chunk ``chunk`` of the store, or None outside a Dask worker."""
    from distributed import Lock, get_worker

    try:
        get_worker()
    except ValueError:
        return None
    return Lock(f"gbdist-atoms:{url}:{chunk}")


def _pieces(start: int, stop: int) -> list[tuple[int, int, int | None]]:
    """[start, stop) cut at atom chunk bounds: (lo, hi, chunk) where a piece fills only part of a
    chunk (another structure may write the rest), else (lo, hi, None)."""
    out, lo = [], start
    while lo < stop:
        hi = min((lo // ATOM_CHUNK + 1) * ATOM_CHUNK, stop)
        whole = lo % ATOM_CHUNK == 0 and hi % ATOM_CHUNK == 0
        out.append((lo, hi, None if whole else lo // ATOM_CHUNK))
        lo = hi
    return out


def write_atoms(arrays: StoreArrays, start: int, structure: Structure, types: np.ndarray, columns: list[str]) -> None:
    """Write ``structure``'s atoms, as they are ordered (stored order), to rows ``start``… of
    ``atoms/*``; ``types`` are its structure types (n,), ``columns`` the store's column names (NaN
    where the structure lacks one)."""
    n = len(structure)
    values = {POSITION: lambda: structure.positions, NUMBER: lambda: structure.numbers.astype(np.uint8),
              ATOM_ID: lambda: structure.ids, STRUCTURE_TYPE: lambda: np.asarray(types, np.int8)}
    for c in columns:
        column = structure.extras.get(c)
        values[column_path(c)] = ((lambda: np.full(n, np.nan)) if column is None else
                                  (lambda column=column: np.asarray(column, np.float64)))
    for path, value in values.items():  # one array at a time: one converted copy alive, not all
        write_rows(arrays, start, {path: value()})


def write_rows(arrays: StoreArrays, start: int, values: dict[str, np.ndarray]) -> None:
    """Write ``values`` ({atom array path: (m, …) values}) to atom rows ``start``… ; a chunk shared
    with another structure is written under its lock."""
    stop = start + len(next(iter(values.values())))
    for lo, hi, chunk in _pieces(start, stop):
        lock = _lock(arrays.url, chunk) if chunk is not None else None
        if lock is not None:
            lock.acquire()
        try:
            for path, value in values.items():
                arrays[path][lo:hi] = value[lo - start:hi - start]
        finally:
            if lock is not None:
                lock.release()


def add_column(group: zarr.Group, name: str) -> str:
    """Create (overwrite, NaN-filled) the per-atom column ``name`` and list it in ``atom_columns``;
    returns its path."""
    path = column_path(name)
    total = group[POSITION].shape[0]
    create_store_array(group, path, shape=(total,), chunks=(ATOM_CHUNK,), dtype=np.float64, fill_value=np.nan,
                       dimension_names=["atom"])
    group.attrs["atom_columns"] = sorted(set(atom_columns(group)) | {name})
    return path


def read_structure(arrays: StoreArrays | zarr.Group, layout: StructureLayout, source: str,
                   columns: list[str] | None = None) -> Structure:
    """Structure ``layout.gb`` as stored (atoms in stored order), named ``source`` in messages; its
    ``extras`` hold ``columns`` (default none) and ``structure_type``."""
    lo, hi = layout.atom_start, layout.atom_start + layout.n_atoms
    extras = {"structure_type": arrays[STRUCTURE_TYPE][lo:hi]}
    extras |= {c: arrays[column_path(c)][lo:hi] for c in (columns or [])}
    return Structure(source=source, positions=arrays[POSITION][lo:hi], cell=layout.cell, pbc=layout.pbc,
                     numbers=arrays[NUMBER][lo:hi].astype(np.int64), ids=arrays[ATOM_ID][lo:hi],
                     origin=layout.origin, extras=extras)


def centre_environment(arrays: StoreArrays, layout: StructureLayout, sites: np.ndarray, width: float,
                       source: str, cache: dict | None = None) -> tuple[Structure, np.ndarray]:
    """The atoms a SOAP code needs for centres ``sites`` (atom rows of structure ``layout.gb``).

    One domain: the whole structure, as stored. More: every atom (or periodic image) of the centres'
    domains and their neighbours within ``width`` Å of the centres' bounding box in each domain
    (``compute.domains.environment``), not periodic along the split vectors; ``cache`` keeps the
    domains read for the next call of the same task.

    Returns (structure, indices of the centres in it, in the order of ``sites``).
    """
    if np.prod(layout.grid) == 1:
        return read_structure(arrays, layout, source), np.asarray(sites) - layout.atom_start
    cache = {"domains": {}, "numbers": {}} if cache is None else cache
    numbers = cache.setdefault("numbers", {})

    def read(domain: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = layout.rows(domain)
        numbers[domain] = arrays[NUMBER][lo:hi]
        return arrays[POSITION][lo:hi], np.arange(lo, hi, dtype=np.int64)

    sites = np.asarray(sites)
    split = layout.grid > 1
    domains = cache.setdefault("domains", {})
    centre_domain = np.searchsorted(layout.domains, sites - layout.atom_start, side="right") - 1
    boxes = {}
    for d in np.unique(centre_domain).tolist():  # the centres' own domains, read once for the halo too
        _, rows, frac, _ = cached_domain(domains, d, read, layout.cell, layout.origin, split & layout.pbc)
        mine = frac[sites[centre_domain == d] - rows[0]]
        boxes[d] = (mine.min(0), mine.max(0))
    positions, rows, in_place = environment(boxes, layout.cell, layout.origin, layout.pbc, layout.grid, width, read,
                                            domains)
    domain = np.searchsorted(layout.domains, rows - layout.atom_start, side="right") - 1
    number = np.empty(len(rows), np.int64)
    for d in np.unique(domain):
        lo, _ = layout.rows(int(d))
        where = domain == d
        number[where] = numbers[int(d)][rows[where] - lo]
    home = np.flatnonzero(in_place)
    by_row = np.argsort(rows[home])
    centres = home[by_row[np.searchsorted(rows[home], sites, sorter=by_row)]]
    structure = Structure(source=source, positions=positions, cell=layout.cell, pbc=layout.pbc & ~split,
                          numbers=number, ids=rows, origin=layout.origin)
    return structure, centres


def structure_atoms(store: str | zarr.Group, gb: int | str, storage_options: dict | None = None):
    """One boundary of a store (its position, or its id) as an ``ase.Atoms``: positions relative to
    the box origin, the cell and periodicity, and per-atom arrays ``id``, ``structure_type`` and every
    stored column. Reads only that boundary's atoms; the input files are not needed.

    Raises
    ------
    StoreError
        If the store holds no structures, or no boundary ``gb``.
    """
    from gbdist.store.schema import open_group

    group = open_group(store, storage_options=storage_options) if isinstance(store, str) else store
    url = store if isinstance(store, str) else str(group.store)
    require_structures(group, url)
    ids = [str(i) for i in group["gb/id"][:]]
    if isinstance(gb, str):
        if gb not in ids:
            raise StoreError(f"{url}: no boundary {gb!r} (ids: {', '.join(ids[:5])}{', …' if len(ids) > 5 else ''})")
        gb = ids.index(gb)
    if not 0 <= gb < len(ids):
        raise StoreError(f"{url}: no boundary {gb} (it holds {len(ids)})")
    structure = gb_structure(group, gb)
    atoms = structure.to_ase()
    atoms.set_array("id", structure.ids)
    for name, values in structure.extras.items():
        atoms.set_array(name, values)
    return atoms
