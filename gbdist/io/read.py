"""One entry point to read any structure file: LAMMPS dumps fast, everything else through ASE."""

from __future__ import annotations

import io
import lzma
import os
import zlib
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gbdist.errors import StructureError
from gbdist.io.checks import check_inside_box, check_min_distance
from gbdist.io.files import open_stream
from gbdist.io.lammps import is_lammps_dump, parse_lammps_stream
from gbdist.rss import release_free_memory
from gbdist.structure import Structure


class ReadParams(BaseModel):
    """How to read structure files.

    LAMMPS dumps carry atom types, not elements: unless the dump has an ``element``
    column, types map through ``type_map`` ({type: symbol}) or all atoms are ``element``. Neither
    has a default: a dump with no ``element`` column and neither option is refused, never read
    as some element by guess.
    """

    model_config = ConfigDict(extra="forbid")
    element: str | None = None
    type_map: dict[int, str] | None = None
    timestep: int | None = None
    box_tolerance: float = Field(1.0, ge=0, description="Å an atom may lie outside a non-periodic box of a LAMMPS dump")


PARSED = {"files": 0, "atoms": 0}
"""Files and atoms this process has parsed (``read_structure``): a benchmark counts with it that
each input is read once."""


def parsed_counts() -> dict[str, int]:
    """A copy of ``PARSED`` (a worker task: ``client.run(parsed_counts)``)."""
    return dict(PARSED)


def read_structure(path: str | os.PathLike, params: ReadParams | None = None) -> Structure:
    """Read one structure; the error always names the file.

    LAMMPS text dumps (plain, .gz, .xz, .bz2) use the vectorised reader; any other
    format ASE can read goes through ``ase.io.read`` (compressed files too). Atoms outside a
    dump's non-periodic box (by more than ``params.box_tolerance``) and atoms closer than
    ``MIN_DISTANCE`` to another are refused (``gbdist.io.checks``).
    """
    params = params or ReadParams()
    name = Path(path).name
    try:
        with open_stream(path) as stream:
            head = stream.read(200)
            if not head.strip() and not stream.read(1 << 16).strip():
                raise StructureError(name, "empty file")
            stream.seek(0)
            if is_lammps_dump(head):  # parsed as it is read: the text is never held whole
                structure = parse_lammps_stream(stream, name, params.timestep, params.element, params.type_map)
            else:
                data = stream.read()
    except FileNotFoundError:
        raise StructureError(name, "no such file") from None
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as err:  # truncated or corrupt archives
        raise StructureError(name, f"cannot read or decompress ({err})") from None
    if is_lammps_dump(head):
        check_inside_box(structure, params.box_tolerance)
    else:
        structure = _read_with_ase(data, path, name)
    release_free_memory()  # the parser's blocks: a 10⁷-atom dump left 0.23 GiB of freed heap resident
    check_min_distance(structure)
    release_free_memory()
    PARSED["files"] += 1
    PARSED["atoms"] += len(structure)
    return structure


def _read_with_ase(data: bytes, path, name: str) -> Structure:
    import ase.io

    plain = str(path)
    for suffix in (".xz", ".gz", ".bz2"):
        if plain.endswith(suffix):
            plain = plain[: -len(suffix)]
    try:
        fmt = ase.io.formats.filetype(plain, read=False)
    except Exception:  # ASE raises several types for unknown names
        fmt = None
    try:
        text = io.StringIO(data.decode())
        atoms = ase.io.read(text, format=fmt) if fmt else ase.io.read(path)
    except UnicodeDecodeError:
        raise StructureError(name, "not a text structure file (undecodable bytes)") from None
    except Exception as err:  # ASE's readers raise anything; report it with the file
        raise StructureError(name, f"ASE cannot read it ({type(err).__name__}: {err})") from None
    if len(atoms) == 0:
        raise StructureError(name, "zero atoms")
    structure = Structure.from_ase(atoms, name)
    if not np.isfinite(structure.positions).all():
        raise StructureError(name, "NaN or inf in atom positions")
    return structure
