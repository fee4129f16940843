"""The input files of a job, with the checksums that tie a store to them."""

from __future__ import annotations

import hashlib
from pathlib import Path

from gbdist.io.files import structure_id


def describe_inputs(files: list[str]) -> list[dict]:
    """One record per file: absolute path, structure id, size in bytes, sha256."""
    records = []
    for f in files:
        digest = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        records.append({"path": str(Path(f).resolve()), "id": structure_id(f),
                        "bytes": Path(f).stat().st_size, "sha256": digest.hexdigest()})
    return records
