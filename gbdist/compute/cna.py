"""Common-neighbour analysis classes, in the LAMMPS convention, computed with asap3 when a file lacks them."""

from __future__ import annotations

import numpy as np

from gbdist.structure import Structure

FCC, HCP, BCC, ICO, OTHER = 1, 2, 3, 4, 5
NAMES = {FCC: "fcc", HCP: "hcp", BCC: "bcc", ICO: "ico", OTHER: "other"}


def compute_cna(structure: Structure) -> np.ndarray:
    """CNA class of every atom (1 fcc, 2 hcp, 5 other), shape (n,), int8.

    Uses asap3's restricted CNA (fcc / hcp / other), with its cutoff between the first
    and second neighbour shells guessed from the elements.
    """
    from asap3.analysis.localstructure import RestrictedCNA

    atoms = structure.to_ase()
    RestrictedCNA(atoms)
    tags = atoms.get_tags()
    return np.array([FCC, HCP, OTHER], dtype=np.int8)[np.clip(tags, 0, 2)]
