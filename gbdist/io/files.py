"""Finding input files and opening them, compressed or not (plain, .gz, .xz, .bz2)."""

from __future__ import annotations

import bz2
import glob
import gzip
import lzma
import os
import re
from pathlib import Path

from gbdist.errors import GbdistError

_COMPRESSED = (".xz", ".gz", ".bz2")
_OPEN = {b"\xfd7zXZ\x00": lzma.open, b"\x1f\x8b": gzip.open, b"BZh": bz2.open}


def open_stream(path: str | os.PathLike):
    """A binary file object of the file's content, decompressing as it is read (by its magic
    bytes: xz, gzip, bzip2) or as is: a reader that never holds the whole text."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    for magic, opener in _OPEN.items():
        if head.startswith(magic):
            return opener(path, "rb")
    return open(path, "rb", buffering=1 << 20)


def open_bytes(path: str | os.PathLike) -> bytes:
    """The whole file's content, decompressed by its magic bytes (xz, gzip, bzip2) or as is."""
    with open_stream(path) as stream:
        return stream.read()


def structure_id(path: str | os.PathLike) -> str:
    """Identifier of the structure in a file: its name less compression and dump suffixes.

    ``ni.p158.out.xz`` → ``ni.p158``; ``gb_0001.dump.gz`` → ``gb_0001``; ``x.extxyz`` → ``x``.
    """
    name = Path(path).name
    for suffix in _COMPRESSED:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    stem, dot, ext = name.rpartition(".")
    return stem if dot and stem else name


def _natural_key(path: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def expand_inputs(inputs: list[str]) -> list[str]:
    """Files named by ``inputs`` (files, directories or glob patterns), natural-sorted, unique.

    Raises
    ------
    GbdistError
        If an input matches nothing, naming it.
    """
    found: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            hits = [str(f) for f in p.iterdir() if f.is_file() and not f.name.startswith(".")]
        elif p.is_file():
            hits = [str(p)]
        else:
            hits = [h for h in glob.glob(item) if Path(h).is_file()]
        if not hits:
            raise GbdistError(f"{item}: no such file, directory or matching pattern")
        found.extend(os.path.abspath(h) for h in hits)
    unique = sorted(set(found), key=_natural_key)
    ids = [structure_id(f) for f in unique]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise GbdistError(f"several input files share the structure id(s) {dupes[:5]}; rename them")
    return unique
