"""Readers: fast LAMMPS text dumps, and any format ASE reads, into :class:`~gbdist.structure.Structure`."""

from gbdist.io.files import expand_inputs, open_bytes, structure_id
from gbdist.io.read import ReadParams, read_structure

__all__ = ["ReadParams", "expand_inputs", "open_bytes", "read_structure", "structure_id"]
