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
    """Yield (timestep, start, end) for every frame of a dump: offsets into ``data``, nothing copied."""
    starts = []
    pos = data.find(b"ITEM: TIMESTEP")
    while pos >= 0:
        starts.append(pos)
        pos = data.find(b"ITEM: TIMESTEP", pos + 1)
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(data)
        lines = data[start:min(end, start + 200)].split(b"\n", 2)
        try:
            step = int(lines[1])
        except (IndexError, ValueError):
            step = None
        yield step, start, end


class _Region(io.RawIOBase):
    """Bytes [start, stop) of ``data`` as a read-only stream that copies only what is read."""

    def __init__(self, data: bytes, start: int, stop: int):
        self.view, self.pos = memoryview(data)[start:stop], 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), len(self.view) - self.pos)
        buffer[:n] = self.view[self.pos:self.pos + n]
        self.pos += n
        return n


ROWS_PER_BLOCK = 1 << 18
"""Atom lines parsed at a time: the parser's working memory is a block's table, not the dump's."""


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


def _atom_table(data: bytes, start: int, end: int, columns: list[str], pos_cols: tuple[str, ...], n: int,
                source: str) -> dict[str, np.ndarray]:
    """The atom lines in ``data[start:end]`` parsed ``ROWS_PER_BLOCK`` at a time into one array per column
    (integer columns int64, others float64, ``element`` a ``pd.Categorical``) and ``positions`` (n, 3) from
    ``pos_cols``: peak memory is the arrays plus one block, never a copy of the text.

    Raises
    ------
    StructureError
        If there are more or fewer than ``n`` lines, a malformed line, or a non-numeric value.
    """
    positions = np.empty((n, 3))
    out = {c: np.empty(n) for c in columns if c not in pos_cols and c != "element"}
    integer = dict.fromkeys(out, True)
    symbols = []
    stream = io.BufferedReader(_Region(data, start, end), buffer_size=1 << 20)
    filled = 0
    try:
        for block in pd.read_csv(stream, sep=r"\s+", header=None, names=columns, engine="c",
                                 chunksize=ROWS_PER_BLOCK, dtype={"element": str} if "element" in columns else None):
            bad = [c for c in block.columns if c != "element" and not pd.api.types.is_numeric_dtype(block[c])]
            if bad:
                raise StructureError(source, f"non-numeric values in column(s) {bad}")
            m = len(block)
            if filled + m <= n:
                rows = slice(filled, filled + m)
                positions[rows] = block[list(pos_cols)].to_numpy(dtype=np.float64)
                for c, values in out.items():
                    values[rows] = block[c].to_numpy(dtype=np.float64)
                    integer[c] &= pd.api.types.is_integer_dtype(block[c])
                if "element" in block:
                    symbols.append(pd.Categorical(block["element"]))
            filled += m
    except pd.errors.EmptyDataError:
        raise StructureError(source, f"truncated dump: header says {n} atoms, found 0") from None
    except (pd.errors.ParserError, ValueError) as err:
        raise StructureError(source, f"malformed atom lines ({str(err).splitlines()[0]})") from None
    if filled != n:
        raise StructureError(source, f"atom count {filled} ≠ header's {n} (truncated or corrupt dump)")
    for c in [c for c in out if integer[c]]:  # one column at a time: one copy alive, not all
        out[c] = out[c].astype(np.int64)
    table = out
    if symbols:  # a Categorical: one small code per atom, not a string object
        table["element"] = pd.api.types.union_categoricals(symbols, ignore_order=True)
    table["positions"] = positions
    return table


def _elements(source: str, table: dict[str, np.ndarray], element: str | None, type_map: dict[int, str] | None):
    """Atomic numbers from an ``element`` column, else ``type`` through ``type_map``, else ``element``."""

    def number(symbol) -> int:
        z = atomic_numbers.get(str(symbol))
        if z is None:
            raise StructureError(source, f"unknown element {str(symbol)!r}")
        return z

    if "element" in table:
        symbols = table["element"]
        if (symbols.codes < 0).any():
            raise StructureError(source, "an atom line has no element")
        return np.array([number(s) for s in symbols.categories], np.int64)[symbols.codes]
    if type_map:
        if "type" not in table:
            raise StructureError(source, "a type map was given but the dump has no 'type' column")
        types = table["type"]
        missing = sorted(set(np.unique(types).tolist()) - set(type_map))
        if missing:
            raise StructureError(source, f"atom types {missing} are not in the type map {type_map}")
        lut = {t: number(s) for t, s in type_map.items()}
        return np.array([lut[t] for t in types.tolist()])
    if element is None:
        raise StructureError(source, "the dump has no 'element' column: say which element its atoms are "
                                     "(--element, or read.element in a job file) or map its types to elements "
                                     "(read.type_map)")
    return np.full(len(table["id"]), number(element))


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
    for step, start, end in _frames(data):
        steps.append(step)
        if timestep is None or step == timestep:
            frame = start, end
            break
    if frame is None:
        if not steps:
            raise StructureError(source, "empty or not a LAMMPS dump (no 'ITEM: TIMESTEP')")
        raise StructureError(source, f"no timestep {timestep}; the dump has {steps[:10]}")

    start, end = frame
    atoms_at = data.find(b"ITEM: ATOMS", start, end)
    head_end = data.find(b"\n", atoms_at, end) if atoms_at >= 0 else end
    head_end = end if head_end < 0 else head_end
    items: dict[bytes, tuple[bytes, bytes]] = {}
    for chunk in data[start:head_end].split(b"ITEM: ")[1:]:  # the header only: no atom line is copied
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
    columns = [c.decode() for c in items[atoms_key][0].split()[1:]]
    if n_header <= 0:
        raise StructureError(source, "zero atoms in the dump")
    if not columns or len(set(columns)) != len(columns):
        raise StructureError(source, f"bad ATOMS header: columns {columns}")
    pos_cols = next((s for s in _POSITION_SETS if all(c in columns for c in s)), None)
    if pos_cols is None:
        raise StructureError(source, f"no position columns (x y z, xu yu zu or xs ys zs) among {columns}")
    if "id" not in columns:
        raise StructureError(source, f"no 'id' column among {columns}")
    table = _atom_table(data, head_end + 1, end, columns, pos_cols, n_header, source)
    positions = table.pop("positions")
    if not np.all(np.isfinite(positions)):
        raise StructureError(source, "NaN or inf in atom positions (or missing values)")
    if pos_cols[0].startswith("xs"):
        positions = positions @ cell + origin
    ids = table["id"]
    if not np.all(ids == np.round(ids)):
        raise StructureError(source, "non-integer atom ids")
    ids = ids.astype(np.int64)
    if len(np.unique(ids)) != len(ids):
        raise StructureError(source, "duplicate atom ids")
    numbers = _elements(source, table, element, type_map)
    extras = {c: table[c] for c in columns if c not in {"id", "element", *pos_cols}}
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
