"""Fast reader for LAMMPS text dumps (``dump atom/custom``), vectorised with pandas' C parser."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from ase.data import atomic_numbers, chemical_symbols

from gbdist.errors import StructureError
from gbdist.structure import Structure

_POSITION_SETS = (("x", "y", "z"), ("xu", "yu", "zu"), ("xs", "ys", "zs"), ("xsu", "ysu", "zsu"))


def is_lammps_dump(text_head: bytes) -> bool:
    """True if the file content starts like a LAMMPS dump."""
    return text_head.lstrip().startswith(b"ITEM: TIMESTEP")


def _frames(data: bytes):
    """Yield (timestep, frame bytes) for every frame of a dump."""
    starts = []
    pos = data.find(b"ITEM: TIMESTEP")
    while pos >= 0:
        starts.append(pos)
        pos = data.find(b"ITEM: TIMESTEP", pos + 1)
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(data)
        frame = data[start:end]
        lines = frame.split(b"\n", 2)
        try:
            step = int(lines[1])
        except (IndexError, ValueError):
            step = None
        yield step, frame


def _box(source: str, header: bytes, lines: list[bytes]):
    """Cell (3×3), origin (3,) and pbc (3,) from a BOX BOUNDS item (orthogonal or triclinic)."""
    flags = header.split()[3:]
    tilted = flags[:3] == [b"xy", b"xz", b"yz"]
    if tilted:
        flags = flags[3:]
    if len(flags) != 3 or len(lines) != 3:
        raise StructureError(source, "bad box: BOX BOUNDS needs three boundary flags and three lines")
    try:
        values = np.array([[float(v) for v in line.split()] for line in lines])
    except ValueError:
        raise StructureError(source, "bad box: non-numeric BOX BOUNDS") from None
    if values.shape != (3, 3 if tilted else 2) or not np.all(np.isfinite(values)):
        raise StructureError(source, "bad box: BOX BOUNDS lines have the wrong number of values")
    lo, hi = values[:, 0].copy(), values[:, 1].copy()
    xy, xz, yz = values[:, 2] if tilted else (0.0, 0.0, 0.0)
    if tilted:  # LAMMPS writes the bounding box of the tilted cell
        lo[0] -= min(0.0, xy, xz, xy + xz)
        hi[0] -= max(0.0, xy, xz, xy + xz)
        lo[1] -= min(0.0, yz)
        hi[1] -= max(0.0, yz)
    if np.any(hi <= lo):
        raise StructureError(source, f"bad box: upper bound not above lower bound ({lo} … {hi})")
    cell = np.array([[hi[0] - lo[0], 0, 0], [xy, hi[1] - lo[1], 0], [xz, yz, hi[2] - lo[2]]])
    pbc = np.array([f == b"pp" for f in flags])
    return cell, lo, pbc


def _elements(source: str, table: pd.DataFrame, element: str | None, type_map: dict[int, str] | None):
    """Atomic numbers from an ``element`` column, else ``type`` through ``type_map``, else ``element``."""

    def number(symbol) -> int:
        z = atomic_numbers.get(str(symbol))
        if z is None:
            raise StructureError(source, f"unknown element {str(symbol)!r}")
        return z

    if "element" in table:
        symbols = table["element"].to_numpy()
        uniq, inverse = np.unique(symbols.astype(str), return_inverse=True)
        return np.array([number(s) for s in uniq])[inverse]
    if type_map:
        if "type" not in table:
            raise StructureError(source, "a type map was given but the dump has no 'type' column")
        types = table["type"].to_numpy()
        missing = sorted(set(np.unique(types).tolist()) - set(type_map))
        if missing:
            raise StructureError(source, f"atom types {missing} are not in the type map {type_map}")
        lut = {t: number(s) for t, s in type_map.items()}
        return np.array([lut[t] for t in types.tolist()])
    if element is None:
        raise StructureError(source, "the dump has no 'element' column: say which element its atoms are "
                                     "(--element, or read.element in a job file) or map its types to elements "
                                     "(read.type_map)")
    return np.full(len(table), number(element))


def parse_lammps_dump(
    data: bytes,
    source: str,
    timestep: int | None = None,
    element: str | None = None,
    type_map: dict[int, str] | None = None,
) -> Structure:
    """Parse one frame of a LAMMPS text dump.

    Parameters
    ----------
    data : the (decompressed) file content.
    source : file name for messages.
    timestep : frame to read; None reads the first.
    element, type_map : how to name atoms when the dump has no ``element`` column.

    Every per-atom column other than id, element and positions is kept in ``extras``
    (``type`` and e.g. ``c_cna``, ``c_csd``). Positions are Cartesian Å (scaled
    coordinates are converted).
    """
    frame = None
    steps = []
    for step, fr in _frames(data):
        steps.append(step)
        if timestep is None or step == timestep:
            frame = fr
            break
    if frame is None:
        if not steps:
            raise StructureError(source, "empty or not a LAMMPS dump (no 'ITEM: TIMESTEP')")
        raise StructureError(source, f"no timestep {timestep}; the dump has {steps[:10]}")

    items: dict[bytes, tuple[bytes, bytes]] = {}
    for chunk in frame.split(b"ITEM: ")[1:]:
        header, _, body = chunk.partition(b"\n")
        key = b" ".join(header.split()[:2])
        items[key] = (header, body)
    for key in (b"NUMBER OF", b"BOX BOUNDS", b"ATOMS"):
        if not any(k.startswith(key) for k in items):
            raise StructureError(source, f"truncated dump: no 'ITEM: {key.decode()}' section")
    try:
        n_header = int(items[b"NUMBER OF"][1].split()[0])
    except (KeyError, IndexError, ValueError):
        raise StructureError(source, "bad 'NUMBER OF ATOMS' section") from None
    box_header, box_body = items[b"BOX BOUNDS"]
    cell, origin, pbc = _box(source, b"ITEM: " + box_header, box_body.strip().split(b"\n")[:3])

    atoms_key = next(k for k in items if k.startswith(b"ATOMS"))
    atoms_header, block = items[atoms_key]
    columns = [c.decode() for c in atoms_header.split()[1:]]
    if n_header <= 0:
        raise StructureError(source, "zero atoms in the dump")
    if not columns or len(set(columns)) != len(columns):
        raise StructureError(source, f"bad ATOMS header: columns {columns}")
    try:
        table = pd.read_csv(io.BytesIO(block), sep=r"\s+", header=None, names=columns, engine="c")
    except pd.errors.EmptyDataError:
        raise StructureError(source, f"truncated dump: header says {n_header} atoms, found 0") from None
    except (pd.errors.ParserError, ValueError) as err:
        raise StructureError(source, f"malformed atom lines ({str(err).splitlines()[0]})") from None
    if len(table) != n_header:
        raise StructureError(source, f"atom count {len(table)} ≠ header's {n_header} (truncated or corrupt dump)")

    pos_cols = next((s for s in _POSITION_SETS if all(c in table for c in s)), None)
    if pos_cols is None:
        raise StructureError(source, f"no position columns (x y z, xu yu zu or xs ys zs) among {columns}")
    if "id" not in table:
        raise StructureError(source, f"no 'id' column among {columns}")
    numeric = [c for c in columns if c != "element"]
    bad = [c for c in numeric if not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        raise StructureError(source, f"non-numeric values in column(s) {bad}")
    positions = table[list(pos_cols)].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(positions)):
        raise StructureError(source, "NaN or inf in atom positions (or missing values)")
    if pos_cols[0].startswith("xs"):
        positions = positions @ cell + origin
    ids = table["id"].to_numpy()
    if not np.all(ids == np.round(ids)):
        raise StructureError(source, "non-integer atom ids")
    ids = ids.astype(np.int64)
    if len(np.unique(ids)) != len(ids):
        raise StructureError(source, "duplicate atom ids")
    numbers = _elements(source, table, element, type_map)
    extras = {c: table[c].to_numpy() for c in columns if c not in {"id", "element", *pos_cols}}
    return Structure(
        source=source, positions=positions, cell=cell, pbc=pbc,
        numbers=numbers, ids=ids, origin=origin, extras=extras,
    )


def format_lammps_dump(structure: Structure, timestep: int = 0) -> bytes:
    """A LAMMPS text dump of ``structure``: ``id type element x y z`` plus every extra column (the
    ``element`` column, which LAMMPS's ``dump custom`` also writes, makes the file say its species).

    ``type`` comes from ``extras['type']`` if present, else 1 for every atom. The box is
    written orthogonal or, for a cell with tilt, as LAMMPS's triclinic bounding box.
    """
    lo = structure.origin
    cell = structure.cell
    xy, xz, yz = cell[1, 0], cell[2, 0], cell[2, 1]
    hi = lo + np.diag(cell)
    flags = " ".join("pp" if p else "ss" for p in structure.pbc)
    if xy or xz or yz:
        blo = [lo[0] + min(0.0, xy, xz, xy + xz), lo[1] + min(0.0, yz), lo[2]]
        bhi = [hi[0] + max(0.0, xy, xz, xy + xz), hi[1] + max(0.0, yz), hi[2]]
        box = f"ITEM: BOX BOUNDS xy xz yz {flags}\n" + "".join(
            f"{a:.10g} {b:.10g} {t:.10g}\n" for a, b, t in zip(blo, bhi, (xy, xz, yz)))
    else:
        box = f"ITEM: BOX BOUNDS {flags}\n" + "".join(f"{a:.10g} {b:.10g}\n" for a, b in zip(lo, hi))
    extras = {k: v for k, v in structure.extras.items() if k != "type"}
    types = structure.extras.get("type", np.ones(len(structure), dtype=int))
    table = pd.DataFrame({"id": structure.ids, "type": types,
                          "element": np.array(chemical_symbols)[np.asarray(structure.numbers, int)]})
    for axis, name in enumerate("xyz"):
        table[name] = structure.positions[:, axis]
    for name, values in extras.items():
        table[name] = values
    head = (f"ITEM: TIMESTEP\n{timestep}\nITEM: NUMBER OF ATOMS\n{len(structure)}\n{box}"
            f"ITEM: ATOMS {' '.join(table.columns)}\n")
    body = table.to_csv(sep=" ", header=False, index=False, float_format="%.8g", lineterminator="\n")
    return head.encode() + body.encode()


def write_lammps_dump(path, structure: Structure, timestep: int = 0) -> None:
    """Write ``structure`` as a LAMMPS text dump; ``.gz`` / ``.xz`` / ``.bz2`` names are compressed."""
    import bz2
    import gzip
    import lzma

    data = format_lammps_dump(structure, timestep)
    name = str(path)
    for suffix, compress in ((".gz", gzip.compress), (".xz", lzma.compress), (".bz2", bz2.compress)):
        if name.endswith(suffix):
            data = compress(data)
    with open(path, "wb") as fh:
        fh.write(data)
