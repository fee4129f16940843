"""Common-neighbour analysis classes (fcc, hcp, other) in the LAMMPS convention, computed with asap3: the
``c_cna`` column gbdist's generators write, as LAMMPS ``compute cna/atom`` would."""

from __future__ import annotations

import numpy as np

from gbdist.compute.crystal import FCC, HCP, OTHER, thick_supercell
from gbdist.structure import Structure

MIN_HEIGHT = 12.0
"""Å; periodic cells thinner than this are replicated before the CNA (asap3 needs a cell height
above twice its neighbour cutoff, 5.2 Å for W)."""


def compute_cna(structure: Structure) -> np.ndarray:
    """CNA class of every atom (1 fcc, 2 hcp, 5 other), shape (n,), int8.

    Uses asap3's restricted CNA (fcc / hcp / other), with its cutoff between the first
    and second neighbour shells guessed from the elements. A cell thinner than ``MIN_HEIGHT``
    along a periodic axis is analysed as a replicated supercell (as OVITO and ASE do), whose
    first copy is the structure itself.
    """
    from asap3.analysis.localstructure import RestrictedCNA

    supercell = thick_supercell(structure, MIN_HEIGHT)
    RestrictedCNA(supercell)
    tags = supercell.get_tags()[:len(structure)]
    return np.array([FCC, HCP, OTHER], dtype=np.int8)[np.clip(tags, 0, 2)]
