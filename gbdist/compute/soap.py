"""The SOAP descriptor: parameters → dscribe SOAP, and SOAP rows for chosen centres of a structure."""

from __future__ import annotations

import time
from functools import lru_cache

import numpy as np
from ase.data import chemical_symbols
from pydantic import BaseModel, ConfigDict, Field

from gbdist.structure import Structure


class SoapParams(BaseModel):
    """SOAP power-spectrum parameters (dscribe). Defaults follow the paper's 5 Å cutoff."""

    model_config = ConfigDict(extra="forbid")
    r_cut: float = Field(5.0, gt=1.0, description="Å")
    n_max: int = Field(12, ge=1, le=15)
    l_max: int = Field(12, ge=0, le=18)
    sigma: float = Field(0.5, gt=0, description="Å, Gaussian width")
    rbf: str = "gto"
    crop: bool = Field(True, description="crop the environment along an open normal (identical values, faster)")


@lru_cache(maxsize=8)
def _soap(r_cut, n_max, l_max, sigma, rbf, species: tuple[str, ...], periodic: bool):
    from dscribe.descriptors import SOAP

    return SOAP(
        species=list(species), r_cut=r_cut, n_max=n_max, l_max=l_max, sigma=sigma,
        rbf=rbf, periodic=periodic, dtype="float32",
    )


def make_soap(params: SoapParams, species: list[str], periodic: bool = True):
    """A dscribe ``SOAP`` for these parameters and species (cached per process)."""
    return _soap(params.r_cut, params.n_max, params.l_max, params.sigma, params.rbf,
                 tuple(sorted(species)), periodic)


def n_features(params: SoapParams, species: list[str]) -> int:
    """Length of one SOAP vector."""
    return make_soap(params, species).get_number_of_features()


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


def soap_rows(structure: Structure, centres: np.ndarray, params: SoapParams,
              species: list[str], normal: int) -> tuple[np.ndarray, float]:
    """Raw dscribe SOAP vectors of ``centres`` (indices into ``structure``).

    The whole structure is the environment. Along an open (non-periodic) normal it is
    cropped to the centres' extent ± (r_cut + dscribe's Gaussian padding + 0.1 Å), which
    gives the same vectors faster, since dscribe reads no atom beyond that distance.

    Returns
    -------
    rows : (len(centres), n_features) float32
    kernel_cpu_s : CPU seconds spent inside dscribe.
    """
    periodic = bool(structure.pbc.any())
    soap = make_soap(params, species, periodic)
    index, local = None, centres
    if params.crop and not structure.pbc[normal]:
        width = params.r_cut + soap.get_cutoff_padding() + 0.1
        index, local = crop_to_centres(structure, centres, normal, width)
    atoms = structure.to_ase(index)
    t0 = time.process_time()
    rows = soap.create(atoms, centers=[int(i) for i in local])
    return np.asarray(rows, dtype=np.float32).reshape(len(centres), -1), time.process_time() - t0


def unit_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-normalise SOAP rows: returns (rows / norm as float32, norms as float32)."""
    norms = np.linalg.norm(rows.astype(np.float64), axis=1)
    return (rows / norms[:, None]).astype(np.float32), norms.astype(np.float32)
