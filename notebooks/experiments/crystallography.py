"""Experiment: crystallographic descriptors of each boundary, alone and beside the ASR.

    .venv/bin/python notebooks/experiments/crystallography.py --store out/olmsted.zarr --splits 10

The Olmsted supplement describes every boundary by its rotation axis and angle, its two
boundary-plane normals (Miller types) and its Σ. From ``supplement/fcc1-4.txt`` this takes,
per GB, the description with the smallest rotation angle (the disorientation) and builds 14
numbers: the angle (degrees), the axis and the two normals as unit vectors of sorted
absolute components (the pair of normals in a fixed order), pure tilt / twist / mixed, and
ln Σ from ``supplement/fcc1-3.txt``. These are a different representation from the paper's
(no atoms are looked at), so they answer one question: do the classification cells miss
because SOAP misses something that the macroscopic geometry carries?

It scores "crystal", "ASR+crystal" and the store's "ASR" with gbdist's Table I protocol
(XGBoost tuned inside each training half) on ``--splits`` of the splits ``gbdist evaluate``
uses (seed 0), and prints mean ± std per cell.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from gbdist.datasets.olmsted import default_root, structure_id
from gbdist.errors import GbdistError

CRYSTAL_FEATURES = ["angle_deg", "axis_0", "axis_1", "axis_2", "normal_a_0", "normal_a_1", "normal_a_2",
                    "normal_b_0", "normal_b_1", "normal_b_2", "tilt", "twist", "mixed", "ln_sigma"]
_SIGMA = re.compile(r"GB_index:\s*(\d+)\s+Sigma:\s*(\d+)")


def _miller_type(components: list[str]) -> np.ndarray:
    """Unit vector of the sorted (descending) absolute components of a Miller type, (3,)."""
    v = np.sort(np.abs(np.array(components, dtype=float)))[::-1]
    return v / np.linalg.norm(v)


def disorientations(path: Path) -> pd.DataFrame:
    """Per GB index, the smallest-angle row of ``fcc1-4.txt`` as numbers (see CRYSTAL_FEATURES).

    A row reads: axis (3 ints), cos(angle), angle (deg), normal A (3), normal B (3),
    tilt|twist|mixed, (k), then the k GB indices it describes.
    """
    best: dict[int, tuple[float, list[float]]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            angle = float(fields[4])
            axis, normal_a, normal_b = _miller_type(fields[0:3]), _miller_type(fields[5:8]), _miller_type(fields[8:11])
            kind = fields[11]
            count = int(fields[12].strip("()"))
            indices = [int(i) for i in fields[13:13 + count]]
        except (IndexError, ValueError) as exc:
            raise GbdistError(f"{path}:{number}: not an axis/angle row ({exc}): {line!r}") from None
        if kind not in ("tilt", "twist", "mixed") or len(indices) != count:
            raise GbdistError(f"{path}:{number}: expected tilt/twist/mixed and {count} GB indices: {line!r}")
        normals = sorted([tuple(normal_a), tuple(normal_b)], reverse=True)
        row = [angle, *axis, *normals[0], *normals[1], kind == "tilt", kind == "twist", kind == "mixed"]
        for index in indices:
            if index not in best or angle < best[index][0]:
                best[index] = (angle, [float(x) for x in row])
    return pd.DataFrame({i: row for i, (_, row) in best.items()}, index=CRYSTAL_FEATURES[:-1]).T.sort_index()


def sigmas(path: Path) -> pd.Series:
    """Σ per GB index, from the ``GB_index: N Sigma: S`` lines of ``fcc1-3.txt``."""
    found = {int(i): int(s) for i, s in _SIGMA.findall(path.read_text())}
    if not found:
        raise GbdistError(f"{path}: no 'GB_index: N Sigma: S' lines")
    return pd.Series(found, name="sigma").sort_index()


def crystal_descriptors(root: str | Path | None = None) -> pd.DataFrame:
    """(388, 14) descriptors indexed by store id (``ni.pN``), columns CRYSTAL_FEATURES."""
    root = Path(root) if root is not None else default_root()
    frame = disorientations(root / "supplement" / "fcc1-4.txt")
    sigma = sigmas(root / "supplement" / "fcc1-3.txt")
    missing = sorted(set(frame.index) ^ set(sigma.index))
    if missing:
        raise GbdistError(f"{root / 'supplement'}: GB indices {missing[:10]} are in one of fcc1-3.txt / fcc1-4.txt only")
    frame["ln_sigma"] = np.log(sigma.loc[frame.index].to_numpy(float))
    frame.index = [structure_id(int(i)) for i in frame.index]
    return frame


def main() -> None:
    from table1_protocol import experiment_parser, score_and_print

    from gbdist.store.representations import read_representations
    from gbdist.store.schema import open_group

    parser = experiment_parser(__doc__)
    parser.add_argument("--olmsted", type=Path, help="Olmsted data folder (default: $GBDIST_OLMSTED or ../shared/data/olmsted)")
    args = parser.parse_args()
    group = open_group(args.store, mode="r")
    ids = [str(i) for i in group["gb/id"][:]]
    table = crystal_descriptors(args.olmsted)
    unknown = sorted(set(ids) - set(table.index))
    if unknown:
        raise SystemExit(f"{args.store}: GBs {unknown[:10]} have no crystallographic description")
    crystal = table.loc[ids].to_numpy(np.float32)
    asr = read_representations(group)["ASR"][0]
    score_and_print(args.store, {"ASR": asr, "crystal": crystal, "ASR+crystal": np.hstack([asr, crystal])},
                    args.labels, args.splits, args.workers)


if __name__ == "__main__":
    main()
