"""The one in-memory atomistic structure type used by every stage."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Structure:
    """An atomistic structure as read from one file.

    Attributes
    ----------
    source : str
        File name it came from (used in every error message).
    positions : (n, 3) float64, Å.
    cell : (3, 3) float64, Å; rows are the cell vectors.
    pbc : (3,) bool, periodicity along each cell vector.
    numbers : (n,) int, atomic numbers.
    ids : (n,) int64, atom ids as in the file (unique).
    origin : (3,) float64, Å; lower corner of the box (positions are absolute).
    extras : per-atom columns kept from the file (e.g. ``type``, ``c_cna``, ``c_csd``).
    """

    source: str
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    numbers: np.ndarray
    ids: np.ndarray
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.positions)

    def to_ase(self, index: np.ndarray | None = None):
        """An ``ase.Atoms`` of all atoms (or of ``index``), positions relative to the box origin."""
        from ase import Atoms

        sel = slice(None) if index is None else index
        return Atoms(
            numbers=self.numbers[sel],
            positions=self.positions[sel] - self.origin,
            cell=self.cell,
            pbc=self.pbc,
        )

    @classmethod
    def from_ase(cls, atoms, source: str) -> Structure:
        """Wrap an ``ase.Atoms``; per-atom arrays other than numbers/positions become extras."""
        n = len(atoms)
        extras = {
            k: np.asarray(v)
            for k, v in atoms.arrays.items()
            if k not in ("numbers", "positions") and len(v) == n and np.asarray(v).ndim == 1
        }
        ids = extras.pop("id", None)
        ids = np.arange(1, n + 1, dtype=np.int64) if ids is None else ids.astype(np.int64)
        return cls(
            source=source,
            positions=np.asarray(atoms.positions, dtype=np.float64),
            cell=np.asarray(atoms.cell[:], dtype=np.float64),
            pbc=np.asarray(atoms.pbc, dtype=bool),
            numbers=np.asarray(atoms.numbers),
            ids=ids,
            extras=extras,
        )
