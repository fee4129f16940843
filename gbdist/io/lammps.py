"""Fast reader for LAMMPS text dumps (``dump atom/custom``), vectorised with pandas' C parser."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pandas as pd
from ase.data import atomic_numbers, chemical_symbols

from gbdist.errors import StructureError
from gbdist.rss import release_free_memory
from gbdist.structure import Structure

_POSITION_SETS = (("x", "y", "z"), ("xu", "yu", "zu"), ("xs", "ys", "zs"), ("xsu", "ysu", "zsu"))


def is_lammps_dump(text_head: bytes) -> bool:
    """True if the file content starts like a LAMMPS dump."""
    return text_head.lstrip().startswith(b"ITEM: TIMESTEP")


def _frame_header(stream, first: bytes) -> tuple[int | None, dict[bytes, tuple[bytes, list[bytes]]], bytes]:
    """Read one frame's header from ``stream``, whose ``ITEM: TIMESTEP`` line ``first`` was just read,
    up to its ``ITEM: ATOMS`` line: (timestep or None, {item key: (header, body lines)}, the line
    that ended it: the ATOMS line, another frame's TIMESTEP line, or b"" at the end)."""
    items: dict[bytes, tuple[bytes, list[bytes]]] = {}
    step_line = stream.readline()
    try:
        step = int(step_line)
    except ValueError:
        step = None
    line = stream.readline()
    while line and not line.startswith(b"ITEM: TIMESTEP"):
        if line.startswith(b"ITEM: "):
            header = line[6:].rstrip(b"\r\n")
            items[b" ".join(header.split()[:2])] = (header, [])
            if header.startswith(b"ATOMS"):
                return step, items, line
        elif items:
            items[next(reversed(items))][1].append(line)
        line = stream.readline()
    return step, items, line


ROWS_PER_BLOCK = 1 << 18
"""Atom lines parsed at a time: the parser's working memory is a block's table, not the dump's."""


def _count(items: dict) -> int | None:
    """The frame's atom count from its NUMBER OF ATOMS item, or None if it has none readable."""
    try:
        return int(b"".join(items[b"NUMBER OF"][1]).split()[0])
    except (KeyError, IndexError, ValueError):
        return None


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


READ_BYTES = 1 << 23
"""Bytes of text read at a time (whole lines of it are parsed; the rest carried to the next read)."""


class _FrameLines:
    """The atom lines of one frame, from a binary stream just past its ``ITEM: ATOMS`` line: whole
    lines in blocks of at most ``READ_BYTES``, up to a count; the frame ends at a line starting
    ``ITEM:`` or at the end of the stream."""

    def __init__(self, stream):
        self.stream, self.carry, self.ended = stream, b"", False

    def take(self, n: int) -> bytes:
        """At most ``n`` more lines (fewer where the frame ends first), joined."""
        text = self.carry
        while not self.ended:
            cut = text.find(b"ITEM:")
            if cut >= 0:  # the next frame (or a section) starts: this frame's lines end here
                text, self.ended = text[:cut], True
                break
            newlines = np.flatnonzero(np.frombuffer(text, np.uint8) == 10)
            if len(newlines) >= n:
                end = int(newlines[n - 1]) + 1
                self.carry = text[end:]
                return text[:end]
            more = self.stream.read(READ_BYTES)
            if not more:
                self.ended = True
                break
            text += more
        self.carry = b""
        return text

    def rest(self) -> int:
        """Non-blank lines left in the frame: atom lines beyond the header's count."""
        extra = 0
        for line in itertools.chain(self.carry.splitlines(), () if self.ended else self.stream):
            if line.startswith(b"ITEM:"):
                break
            extra += bool(line.strip())
        return extra


def _atom_table(stream, columns: list[str], pos_cols: tuple[str, ...], n: int, source: str) -> dict[str, np.ndarray]:
    """The frame's atom lines, read from ``stream`` ``ROWS_PER_BLOCK`` at a time and parsed into one
    array per column (integer columns int64, others float64, ``element`` a ``pd.Categorical``) and
    ``positions`` (n, 3) from ``pos_cols``: peak memory is the arrays plus one block, never the text.

    Raises
    ------
    StructureError
        If the frame has more or fewer than ``n`` lines, a malformed line, or a non-numeric value.
    """
    positions = np.empty((n, 3))
    out = {c: np.empty(n) for c in columns if c not in pos_cols and c != "element"}
    integer = dict.fromkeys(out, True)
    symbols = []
    lines = _FrameLines(stream)
    filled = 0
    while filled < n:
        text = lines.take(min(ROWS_PER_BLOCK, n - filled))
        if not text.strip():
            break
        try:
            block = pd.read_csv(io.BytesIO(text), sep=r"\s+", header=None, names=columns, engine="c",
                                dtype={"element": str} if "element" in columns else None)
        except (pd.errors.ParserError, ValueError) as err:
            raise StructureError(source, f"malformed atom lines ({str(err).splitlines()[0]})") from None
        bad = [c for c in block.columns if c != "element" and not pd.api.types.is_numeric_dtype(block[c])]
        if bad:
            raise StructureError(source, f"non-numeric values in column(s) {bad}")
        rows = slice(filled, filled + len(block))
        positions[rows] = block[list(pos_cols)].to_numpy(dtype=np.float64)
        for c, values in out.items():
            values[rows] = block[c].to_numpy(dtype=np.float64)
            integer[c] &= pd.api.types.is_integer_dtype(block[c])
        if "element" in block:
            symbols.append(pd.Categorical(block["element"]))
        filled += len(block)
        del block, text
        release_free_memory()  # the block's freed text and frame: else the heap keeps them resident
    if filled == 0:
        raise StructureError(source, f"truncated dump: header says {n} atoms, found 0")
    extra = 0 if filled < n else lines.rest()
    if filled != n or extra:
        raise StructureError(source, f"atom count {filled + extra} ≠ header's {n} (truncated or corrupt dump)")
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


def parse_lammps_dump(data: bytes, source: str, timestep: int | None = None, element: str | None = None,
                      type_map: dict[int, str] | None = None) -> Structure:
    """``parse_lammps_stream`` of a dump's (decompressed) content in memory."""
    return parse_lammps_stream(io.BytesIO(data), source, timestep, element, type_map)


def parse_lammps_stream(
    stream,
    source: str,
    timestep: int | None = None,
    element: str | None = None,
    type_map: dict[int, str] | None = None,
) -> Structure:
    """Parse one frame of a LAMMPS text dump read from the binary ``stream`` (a file, plain or
    decompressing), line blocks at a time: the text is never held whole.

    Parameters
    ----------
    stream : a binary file object at the start of the dump.
    source : file name for messages.
    timestep : frame to read; None reads the first.
    element, type_map : how to name atoms when the dump has no ``element`` column.

    Every per-atom column other than id, element and positions is kept in ``extras``
    (``type`` and e.g. ``c_cna``, ``c_csd``). Positions are Cartesian Å (scaled
    coordinates are converted).
    """
    steps, line = [], stream.readline()
    while line and not line.startswith(b"ITEM: TIMESTEP"):
        line = stream.readline()
    items = None
    while line:
        step, frame_items, line = _frame_header(stream, line)
        steps.append(step)
        if timestep is None or step == timestep:
            items = frame_items
            break
        n = _count(frame_items)
        if line.startswith(b"ITEM: ATOMS") and n:
            for _ in itertools.islice(stream, n):  # skip this frame's atom lines
                pass
        line = stream.readline()
        while line and not line.startswith(b"ITEM: TIMESTEP"):
            line = stream.readline()
    if items is None:
        if not steps:
            raise StructureError(source, "empty or not a LAMMPS dump (no 'ITEM: TIMESTEP')")
        raise StructureError(source, f"no timestep {timestep}; the dump has {steps[:10]}")
    for key in (b"NUMBER OF", b"BOX BOUNDS", b"ATOMS"):
        if not any(k.startswith(key) for k in items):
            raise StructureError(source, f"truncated dump: no 'ITEM: {key.decode()}' section")
    n_header = _count(items)
    if n_header is None:
        raise StructureError(source, "bad 'NUMBER OF ATOMS' section")
    box_header, box_body = items[b"BOX BOUNDS"]
    cell, origin, pbc = _box(source, b"ITEM: " + box_header, [b.strip() for b in box_body if b.strip()][:3])

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
    table = _atom_table(stream, columns, pos_cols, n_header, source)
    positions = table.pop("positions")
    if not np.all(np.isfinite(positions)):
        raise StructureError(source, "NaN or inf in atom positions (or missing values)")
    if pos_cols[0].startswith("xs"):
        positions = positions @ cell + origin
    ids = table["id"]
    if ids.dtype.kind == "f":  # an integer column is int64 already (_atom_table); a float one must hold integers
        if not np.all(ids == np.round(ids)):
            raise StructureError(source, "non-integer atom ids")
        ids = ids.astype(np.int64)
    ordered = np.sort(ids)  # one copy, not np.unique's several
    if (ordered[1:] == ordered[:-1]).any():
        raise StructureError(source, "duplicate atom ids")
    del ordered
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
