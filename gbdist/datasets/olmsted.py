"""Labels of the Olmsted survey of 388 Ni GBs, as used in Table I of Rosenbrock et al. (2017).

energy: Ni column of ``supplement/fcc1-1.txt`` (J/m²); mobility_trend: ``M4`` of
``trends/mobility_trend.csv`` (4 classes); shear_coupling: ``SC`` of
``trends/shear_coupling.csv`` (0/1). All keyed by the GB index N, whose structure is
``dumps/ni.pN.out.xz`` (store id ``ni.pN``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from gbdist.errors import GbdistError

PROPERTIES = ("energy", "mobility_trend", "shear_coupling")
# Table I of the paper (mean over 50 random 50/50 splits), for side-by-side reports.
PAPER_TABLE1 = {
    "energy": {"ASR": 89.2, "LER": 88.5, "random": 70.4},
    "mobility_trend": {"ASR": 77.4, "LER": 74.3, "random": 38.5},
    "shear_coupling": {"ASR": 61.3, "LER": 61.4, "random": 52.0},
}


def default_root() -> Path:
    """``$GBDIST_OLMSTED`` if set, else ``../shared/data/olmsted`` from the working directory."""
    return Path(os.environ.get("GBDIST_OLMSTED", "../shared/data/olmsted"))


LABEL_FILES = {"energy": "supplement/fcc1-1.txt", "mobility": "trends/mobility_trend.csv",
               "shear": "trends/shear_coupling.csv"}
"""The label tables of the Olmsted layout, relative to its root folder."""


def missing_label_files(root: str | Path) -> list[str]:
    """The label tables of the Olmsted layout that folder ``root`` lacks (empty: it is one)."""
    return [rel for rel in LABEL_FILES.values() if not (Path(root) / rel).is_file()]


def structure_id(index: int) -> str:
    """Store id of Olmsted GB ``index`` (the dump's file stem)."""
    return f"ni.p{index}"


def olmsted_labels(root: str | Path | None = None) -> pd.DataFrame:
    """The three Table I properties, indexed by store id (``ni.p1`` …). Errors name the missing file."""
    root = Path(root) if root is not None else default_root()
    files = {key: root / rel for key, rel in LABEL_FILES.items()}
    for path in files.values():
        if not path.is_file():
            raise GbdistError(f"{path}: Olmsted label file not found (set GBDIST_OLMSTED to the data folder)")
    energy = pd.read_csv(files["energy"], sep=r"\s+", skiprows=1, header=None,
                         names=["index", "Ni", "Al"], index_col="index")["Ni"]
    mobility = pd.read_csv(files["mobility"], index_col="PID")["M4"]
    shear = pd.read_csv(files["shear"], index_col="PID")["SC"]
    frame = pd.DataFrame({"energy": energy, "mobility_trend": mobility, "shear_coupling": shear})
    frame.index = [structure_id(int(i)) for i in frame.index]
    frame.index.name = "id"
    frame.attrs.update({"source": str(root), "survey": True})  # a store may hold some of its GBs
    return frame
