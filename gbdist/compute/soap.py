"""The SOAP descriptor: parameters → a SOAP kernel (dscribe or featomic), and SOAP rows for chosen
centres of a structure.

Both backends compute the SOAP power spectrum with a GTO radial basis and Gaussian densities
of width ``sigma``; their vectors differ (featomic has a smooth cutoff, a shifted cosine over
the last ``FEATOMIC_SMOOTHING`` Å, and its own radial basis), so a store holds one backend
only. featomic's rows are packed to the length of dscribe's (``FEATOMIC_LAYOUT``).
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Literal

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gbdist.errors import GbdistError, StoreError
from gbdist.structure import Structure

FEATOMIC_SMOOTHING = 0.5
"""Å, width of featomic's shifted-cosine cutoff smoothing (ends at r_cut)."""

FEATOMIC_VACUUM = 6.0
"""Å of vacuum each side of an open normal: featomic needs every axis periodic, and a gap
over r_cut keeps the periodic images out of every environment."""


class SoapParams(BaseModel):
    """SOAP power-spectrum parameters. Defaults follow the paper's 5 Å cutoff."""

    model_config = ConfigDict(extra="forbid")
    r_cut: float = Field(5.0, gt=1.0, description="Å")
    n_max: int = Field(12, ge=1, le=15)
    l_max: int = Field(12, ge=0, le=18)
    sigma: float = Field(0.5, gt=0, description="Å, Gaussian width")
    rbf: str = "gto"
    crop: bool = Field(True, description="crop the environment along an open normal (identical values, faster)")
    backend: Literal["dscribe", "featomic"] = Field("dscribe", description="the SOAP code (featomic: pip install "
                                                    "'gbdist[featomic]')")
    compression: Literal["off", "mu1nu1", "mu2", "crossover"] = Field(
        "off", description="dscribe's species compression: off (every species pair), mu1nu1 (linear in species), "
                           "crossover (same-species pairs only) or mu2 (species-blind)")

    @model_validator(mode="after")
    def _compression_is_dscribes(self):
        if self.compression != "off" and self.backend != "dscribe":
            raise ValueError(f"soap.compression {self.compression} is dscribe's; featomic computes every species pair")
        return self


FEATOMIC_LAYOUT = "n1<=n2, centre order"
"""How gbdist stores featomic's power spectrum: for a pair of one species only n_1 ≤ n_2 (see
``_pack_symmetric``), one row per centre in the order the centres are given. Stores and bundles
record it, so rows in another layout are refused (``OLD_FEATOMIC_LAYOUTS``)."""

OLD_FEATOMIC_LAYOUTS = {
    "full n1 × n2": "every (n_1, n_2), 1872 numbers a row at 12/12",
    "n1<=n2": "each GB's rows in ascending atom index instead of the store's atom-id order, so a row "
              "could stand beside another atom's id and CNA class",
}
"""featomic row layouts of older gbdist versions, and what is wrong with each here."""


def old_featomic_rows(record: dict | None) -> str | None:
    """What is wrong with the rows of a store or bundle whose ``soap_backend`` record is ``record``
    (None if nothing: dscribe, no record, or featomic in this gbdist's layout)."""
    if not record or record.get("name") != "featomic":
        return None
    layout = record.get("layout", "full n1 × n2")
    if layout == FEATOMIC_LAYOUT:
        return None
    why = OLD_FEATOMIC_LAYOUTS.get(layout, "a layout this gbdist does not know")
    return f"featomic rows of an older gbdist (layout {layout}: {why}); this gbdist writes {FEATOMIC_LAYOUT}"


def check_store_rows(store: str, record: dict | None) -> None:
    """Refuse a store whose ``soap_backend`` ``record`` says its rows are older featomic rows
    (``old_featomic_rows``): a StoreError naming the store, the reason and the remedy."""
    problem = old_featomic_rows(record)
    if problem:
        raise StoreError(f"{store}: {problem}; recompute the store with `gbdist soap`")


def backend_version(params: SoapParams) -> dict:
    """{"name", "version"} of the SOAP code ``params`` use (and featomic's row "layout"); a clear
    error if it is not installed."""
    from importlib.metadata import version

    if params.backend == "featomic":
        _featomic()
        return {"name": "featomic", "version": version("featomic"), "layout": FEATOMIC_LAYOUT}
    return {"name": params.backend, "version": version(params.backend)}


def _featomic():
    import os

    os.environ.setdefault("RAYON_NUM_THREADS", "1")  # one structure per core, like dscribe (before featomic loads)
    try:
        import featomic
    except ImportError:
        raise GbdistError("soap.backend featomic: featomic is not installed; pip install 'gbdist[featomic]'") from None
    return featomic


@lru_cache(maxsize=8)
def _soap(r_cut, n_max, l_max, sigma, rbf, species: tuple[str, ...], periodic: bool, compression: str = "off"):
    from dscribe.descriptors import SOAP

    return SOAP(
        species=list(species), r_cut=r_cut, n_max=n_max, l_max=l_max, sigma=sigma,
        rbf=rbf, periodic=periodic, dtype="float32", compression={"mode": compression},
    )


def make_soap(params: SoapParams, species: list[str], periodic: bool = True):
    """A dscribe ``SOAP`` for these parameters and species (cached per process).

    Row length for k species at n_max n and l_max l (``soap_row_length``): with ``compression`` off
    (k · n(n+1)/2 + k(k−1)/2 · n²)(l+1): 1,014 for one species at 12/12, 3,900 for two, 8,658 for three;
    mu1nu1 k · n²(l+1); crossover k · n(n+1)/2 · (l+1); mu2 n(n+1)/2 · (l+1) whatever k.
    """
    return _soap(params.r_cut, params.n_max, params.l_max, params.sigma, params.rbf,
                 tuple(sorted(species)), periodic, params.compression)


@lru_cache(maxsize=8)
def _featomic_soap(r_cut, n_max, l_max, sigma):
    return _featomic().SoapPowerSpectrum(
        cutoff={"radius": r_cut, "smoothing": {"type": "ShiftedCosine", "width": FEATOMIC_SMOOTHING}},
        density={"type": "Gaussian", "width": sigma},
        basis={"type": "TensorProduct", "max_angular": l_max, "radial": {"type": "Gto", "max_radial": n_max - 1}})


def soap_row_length(params: SoapParams, k: int) -> int:
    """The documented length of a dscribe SOAP row for k species (see ``make_soap``)."""
    n, width = params.n_max, params.l_max + 1
    same, pair = n * (n + 1) // 2, n * n
    return width * {"off": k * same + k * (k - 1) // 2 * pair, "mu1nu1": k * pair,
                    "crossover": k * same, "mu2": same}[params.compression]


def n_features(params: SoapParams, species: list[str]) -> int:
    """Length of one SOAP vector."""
    if params.backend == "featomic":
        return sum(_featomic_pair_widths(params, species).values())
    return make_soap(params, species).get_number_of_features()


def _featomic_pair_widths(params: SoapParams, species: list[str]) -> dict[tuple[int, int], int]:
    """Columns of each neighbour-species pair (a ≤ b, atomic numbers ascending) in a packed
    featomic row: n_1 ≤ n_2 for a pair of one species, every (n_1, n_2) for two; times l_max + 1."""
    numbers = sorted(atomic_numbers[s] for s in species)
    n = params.n_max
    return {(a, b): (n * (n + 1) // 2 if a == b else n * n) * (params.l_max + 1)
            for i, a in enumerate(numbers) for b in numbers[i:]}


def _same_species_properties(params: SoapParams):
    """featomic's (l, n_1, n_2) with n_1 ≤ n_2, in its own order: all a one-species block needs."""
    import metatensor

    n = params.n_max
    return metatensor.Labels(["l", "n_1", "n_2"], np.array(
        [(ell, n_1, n_2) for ell in range(params.l_max + 1) for n_1 in range(n) for n_2 in range(n_1, n)], np.int32))


def _featomic_rows(atoms: Atoms, centres: np.ndarray, params: SoapParams, species: list[str]) -> np.ndarray:
    """featomic SOAP rows (len(centres), n_features) float32 of ``atoms`` (every axis periodic), packed.

    Columns: the species pairs (a ≤ b, atomic numbers ascending), each featomic's (l, n_1, n_2)
    in its order, n_1 ≤ n_2 only for a = b (see ``_pack_symmetric``). With one species featomic
    is asked for those properties only; the blocks go straight into the rows (no metatensor
    key moves, which copy every block).
    """
    import metatensor

    calculator = _featomic_soap(params.r_cut, params.n_max, params.l_max, params.sigma)
    samples = metatensor.Labels(["atom"], np.asarray(centres, dtype=np.int32).reshape(-1, 1))
    selected = _same_species_properties(params) if len(species) == 1 else None
    tensor = calculator.compute(atoms, selected_samples=samples, selected_properties=selected)
    widths = _featomic_pair_widths(params, species)
    first = dict(zip(widths, np.cumsum([0, *widths.values()])))
    rows = np.zeros((len(centres), sum(widths.values())), np.float32)
    row_of = {int(atom): i for i, atom in enumerate(centres)}
    for key, block in zip(tensor.keys, tensor.blocks()):
        pair = (int(key["neighbor_1_type"]), int(key["neighbor_2_type"]))
        values = _pack_symmetric(block.values, np.asarray(block.properties.values), pair[0] == pair[1])
        where = [row_of[int(atom)] for atom in block.samples.column("atom")]
        rows[where, first[pair]:first[pair] + values.shape[1]] = values
    return rows


def _pack_symmetric(values: np.ndarray, properties: np.ndarray, same: bool) -> np.ndarray:
    """One featomic block's values (m, p) with properties (p, 3): l, n_1, n_2, for the neighbour
    pair of one species (``same``) or of two. For one species p(n_1, n_2, l) = p(n_2, n_1, l):
    keep n_1 ≤ n_2 and scale n_1 < n_2 by √2, so every inner product and norm is unchanged;
    (m, p') float32, 1014 columns at 12/12 for one species instead of 1872 (as dscribe's)."""
    if not same:
        return values.astype(np.float32)
    _, n_1, n_2 = properties.T
    keep = n_1 <= n_2
    weight = np.where(n_1 < n_2, np.sqrt(2.0), 1.0)[keep]
    return (values[:, keep] * weight).astype(np.float32)


def atoms_soap(atoms: Atoms, centres: np.ndarray, params: SoapParams, species: list[str]) -> np.ndarray:
    """Raw SOAP rows (len(centres), n_features) float32 of ``atoms`` at ``centres`` (indices, any
    order; row i is centre i), with either backend. An open axis is made periodic with vacuum for featomic."""
    if params.backend == "dscribe":
        soap = make_soap(params, species, bool(atoms.pbc.any()))
        # the centres' own positions, not their indices: dscribe 2 turns each index into a position
        # with a copy of every atom's positions (get_positions()[i]) that it keeps to the end of the
        # call (DSCRIBE_CENTRE_BYTES); its kernel sees the same positions either way
        at = np.asarray(atoms.positions)[np.asarray(centres, np.int64)]
        return np.asarray(soap.create(atoms, centers=at), np.float32).reshape(len(centres), -1)
    atoms = atoms.copy()
    for axis in np.flatnonzero(~atoms.pbc):
        x = atoms.positions[:, axis]
        atoms.positions[:, axis] -= x.min() - FEATOMIC_VACUUM
        cell = atoms.cell.array.copy()
        cell[axis] = 0.0
        cell[axis, axis] = x.max() - x.min() + 2 * FEATOMIC_VACUUM
        atoms.set_cell(cell)
    atoms.pbc = True
    return _featomic_rows(atoms, centres, params, species)


def species_symbols(numbers) -> list[str]:
    """Sorted element symbols of a set of atomic numbers."""
    return sorted({chemical_symbols[int(z)] for z in np.unique(numbers)})


def crop_to_centres(structure: Structure, centres: np.ndarray, normal: int, width: float):
    """Atoms within ``width`` Å of the centres' extent along an open normal.

    Returns (kept atom indices, centre positions within the kept list).
    """
    x = structure.positions[:, normal]
    xc = x[centres]
    keep = np.flatnonzero((x >= xc.min() - width) & (x <= xc.max() + width))
    return keep, np.searchsorted(keep, centres)


def crop_width(params: SoapParams, species: list[str]) -> float:
    """Å beyond the centres' extent that no environment reaches: r_cut plus dscribe's Gaussian
    padding (dscribe has no smooth cutoff), or plus 0.1 Å for featomic's smooth one."""
    padding = make_soap(params, species).get_cutoff_padding() if params.backend == "dscribe" else 0.0
    return params.r_cut + padding + 0.1


DSCRIBE_CENTRE_BYTES = 64 * 1024
"""Bytes dscribe holds per centre while it computes a batch, beyond the rows, given the centres as
positions (``atoms_soap``): 30–42 kB measured over 1,024 and 4,096 centres of Olmsted ni.p101
(18,360 atoms) and Homer-Al S103e (11,612), whatever the environment's size
(``notebooks/experiments/dscribe_memory.py``). Given as indices, dscribe 2 kept a copy of every
atom's positions per centre: 24 bytes per (centre, environment atom) pair, 1.7 GB for 4,096
centres of ni.p101."""

FEATOMIC_CENTRE_BYTES = 64 * 1024
"""Bytes featomic holds per centre beyond its neighbour list of the whole environment (which
batches of centres cannot shrink): under 10 kB measured on the Homer-Al S197g boundary; 64 kB
keeps a margin."""


def centre_batch(n_centres: int, params: SoapParams, n_feat: int, budget_bytes: float | None) -> int:
    """Centres per SOAP call so that one call's working memory stays within ``budget_bytes``.

    dscribe holds ``DSCRIBE_CENTRE_BYTES`` per centre, featomic ``FEATOMIC_CENTRE_BYTES``; both hold
    the float32 rows (``n_feat`` each). None: no budget (one call). Never below 1: one centre is
    the least a call can compute.
    """
    if budget_bytes is None or n_centres == 0:
        return max(n_centres, 1)
    per_centre = (DSCRIBE_CENTRE_BYTES if params.backend == "dscribe" else FEATOMIC_CENTRE_BYTES) + 8 * n_feat
    return int(min(n_centres, max(1, budget_bytes // per_centre)))


def soap_rows(structure: Structure, centres: np.ndarray, params: SoapParams,
              species: list[str], normal: int, budget_bytes: float | None = None) -> tuple[np.ndarray, float]:
    """Raw SOAP vectors of ``centres`` (indices into ``structure``, any order; row i is centre i).

    The whole structure is the environment. Along an open (non-periodic) ``normal`` (−1: none) it is
    cropped to the centres' extent ± ``crop_width``, which gives the same vectors faster,
    since the kernel reads no atom beyond that distance. The centres go to the SOAP code in
    batches sized by ``centre_batch`` to ``budget_bytes`` (bytes, None: one batch); every batch
    sees the same environment, so the rows are bit-identical whatever the budget.

    Returns
    -------
    rows : (len(centres), n_features) float32
    kernel_cpu_s : CPU seconds spent inside the SOAP code.
    """
    index, local = None, centres
    if params.crop and normal >= 0 and not structure.pbc[normal]:
        index, local = crop_to_centres(structure, centres, normal, crop_width(params, species))
    atoms = structure.to_ase(index)
    n_feat = n_features(params, species)
    batch = centre_batch(len(local), params, n_feat, budget_bytes)
    rows = np.empty((len(local), n_feat), np.float32)
    t0 = time.process_time()
    for start in range(0, len(local), batch):
        rows[start:start + batch] = atoms_soap(atoms, local[start:start + batch], params, species)
    return rows, time.process_time() - t0


def unit_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-normalise SOAP rows: returns (rows / norm as float32, norms as float32).

    Norms and quotients are taken in float64 (buffered, with no float64 copy of the block).
    """
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))
    unit = np.divide(rows, norms[:, None], out=np.empty(rows.shape, np.float32), dtype=np.float64, casting="unsafe")
    return unit, norms.astype(np.float32)
