"""Per-atom (site) energies of a structure: an embedded-atom potential from a file, or EMT.

E_i = F_i(ρ_i) + ½ Σ_j φ_ij(r_ij), ρ_i = Σ_j f_j(r_ij) (Finnis–Sinclair: f_ji), summed over the
neighbours within the potential's cutoff, periodic images included. ASE reads the potential (a
LAMMPS ``setfl`` ``.eam.alloy``, ``funcfl`` ``.eam`` or ``.eam.fs`` file) and gives its splines;
ASE's ``EAM`` calculator returns only the total energy (``energies`` raises
``PropertyNotImplementedError``), and matscipy's neither, so the per-atom sums are made here, over
scipy kd-tree neighbour pairs, vectorised per element pair. Their sum is ASE's total energy (tested).
EMT (``emt``: asap3's, else ASE's) returns per-atom energies itself (``get_potential_energies``).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from gbdist.compute.crystal import periodic_images
from gbdist.errors import GbdistError
from gbdist.io.files import open_bytes
from gbdist.structure import Structure

EAM_FORMS = {".eam.alloy": "alloy", ".eam.fs": "fs", ".eam": "eam", ".alloy": "alloy", ".fs": "fs"}
"""File-name endings (less a compression suffix) → ASE's EAM form."""


def read_eam(path: str | Path):
    """The potential in ``path`` (plain or .gz/.xz/.bz2) as ASE's ``EAM`` calculator (its splines).

    Raises
    ------
    GbdistError
        Naming the file: missing, of no EAM format by its name, or unreadable by ASE.
    """
    from ase.calculators.eam import EAM

    name = Path(path).name
    plain = name
    for suffix in (".xz", ".gz", ".bz2"):
        plain = plain.removesuffix(suffix)
    form = next((f for end, f in EAM_FORMS.items() if plain.endswith(end)), None)
    if form is None:
        raise GbdistError(f"{name}: not an EAM potential by its name (.eam, .eam.alloy or .eam.fs)")
    try:
        text = open_bytes(path).decode()
    except FileNotFoundError:
        raise GbdistError(f"{name}: no such potential file") from None
    try:
        return EAM(potential=io.StringIO(text), form=form)
    except Exception as err:  # ASE's reader raises anything on a malformed file
        raise GbdistError(f"{name}: ASE cannot read it as an EAM {form} potential ({type(err).__name__}: {err})") from None


def neighbour_pairs(atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (i, j, r_ij ≤ ``cutoff`` Å) of ``atoms``, periodic images included (an atom's own images
    too): two kd-trees (the atoms, and the atoms with their images, ``crystal.periodic_images``).
    Memory grows with the pairs, whatever the cell's tilt (ASE's ``neighbor_list`` took a 4 GiB
    worker past its limit on S87d of the Al survey: 9,240 atoms, b tilted by 283.5 Å over 39.5 Å)."""
    from scipy.spatial import cKDTree

    structure = Structure.from_ase(atoms, "atoms")
    images, index = periodic_images(structure, cutoff)
    own = images[:len(structure)]
    pairs = cKDTree(own).sparse_distance_matrix(cKDTree(images), cutoff, output_type="ndarray")
    i, k, r = pairs["i"].astype(np.int64), pairs["j"].astype(np.int64), pairs["v"]
    keep = k != i  # not an atom with itself (its images stay)
    return i[keep], index[k[keep]], r[keep]


def eam_site_energies(atoms, eam) -> np.ndarray:
    """(n,) float64 eV, each atom's energy F(ρ_i) + ½ Σ_j φ(r_ij) under ``eam`` (``read_eam``).

    Raises
    ------
    GbdistError
        If an element of ``atoms`` is not in the potential.
    """
    symbols = atoms.get_chemical_symbols()
    missing = sorted(set(symbols) - set(eam.elements))
    if missing:
        raise GbdistError(f"element(s) {', '.join(missing)} not in the potential ({', '.join(eam.elements)})")
    kind = np.array([eam.elements.index(s) for s in symbols])
    i, j, r = neighbour_pairs(atoms, eam.cutoff)
    n, k = len(atoms), len(eam.elements)
    density, pair = np.zeros(n), np.zeros(n)
    for a in range(k):
        for b in range(k):
            pairs = (kind[i] == a) & (kind[j] == b)  # i of element a, its neighbour j of element b
            if not pairs.any():
                continue
            f = eam.electron_density[b, a] if eam.form == "fs" else eam.electron_density[b]
            density += np.bincount(i[pairs], f(r[pairs]), minlength=n)
            pair += np.bincount(i[pairs], eam.phi[a, b](r[pairs]), minlength=n)
    embedding = np.zeros(n)
    for a in range(k):
        mine = kind == a
        embedding[mine] = eam.embedded_energy[a](density[mine])
    return embedding + 0.5 * pair


EMT = "emt"
"""The name that asks for the EMT calculator instead of a potential file."""
EMT_ELEMENTS = {"Ni", "Cu", "Al", "Ag", "Au", "Pd", "Pt"}
"""Elements EMT has parameters for (all fcc); asap3 returns numbers for others without a word."""


def emt_calculator():
    """asap3's EMT (fast), else ASE's."""
    try:
        from asap3 import EMT as AsapEMT
    except ImportError:  # pragma: no cover - asap3 is a dependency; ASE's EMT is the slow fallback
        from ase.calculators.emt import EMT as AseEMT

        return AseEMT()
    return AsapEMT()


def read_potential(spec: str | Path):
    """``emt`` (the name) → ``EMT``; anything else is an EAM file (``read_eam``)."""
    return EMT if str(spec).lower() == EMT else read_eam(spec)


def site_energies(atoms, potential) -> np.ndarray:
    """(n,) float64 eV, each atom's energy under ``potential`` (``read_potential``: EAM or ``EMT``).
    EMT gets a new calculator for each structure: asap3's keeps the cell it first saw, and then
    refuses a smaller one (measured: a 4-atom bulk cell after a boundary).

    Raises
    ------
    GbdistError
        If the potential has no parameters for an element of ``atoms``.
    """
    from ase.calculators.eam import EAM

    if isinstance(potential, EAM):
        return eam_site_energies(atoms, potential)
    if potential != EMT:
        raise TypeError(f"not a potential from read_potential: {potential!r}")
    missing = sorted(set(atoms.get_chemical_symbols()) - EMT_ELEMENTS)
    if missing:
        raise GbdistError(f"element(s) {', '.join(missing)} not described by EMT ({', '.join(sorted(EMT_ELEMENTS))})")
    atoms = atoms.copy()
    atoms.calc = emt_calculator()
    return np.asarray(atoms.get_potential_energies(), np.float64)
