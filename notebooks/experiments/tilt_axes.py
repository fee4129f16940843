"""Check: the tilt axes ``gbdist explain`` detects, against the Olmsted survey's own crystallography.

    .venv/bin/python notebooks/experiments/tilt_axes.py [GB numbers …]

For every dump (or the given ones) the two grains' orientations are fitted to fcc bonds and
the tilt axis found as ``gbdist.compute.orientation.bicrystal_tilt_axis`` finds it for the
pictures. ``supplement/fcc1-2.txt`` lists, per boundary, its axis/angle descriptions, each
marked tilt, twist or mixed. A detected axis *matches* when the survey lists a tilt
description of the same axis family within 0.5°. A boundary without a detected axis is a
*twist* when the survey's smallest-angle description is a twist (the rule the pictures follow,
even where the survey lists a tilt description too), else *missed* when the survey lists a
tilt description whose axis repeats within 1.8 lattice constants (the only axes the pictures
use). Prints one line per other axis, twist with a tilt description, or miss; then the counts.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import numpy as np

from gbdist.compute.crystal import FCC, structure_types
from gbdist.compute.orientation import bicrystal_tilt_axis, fcc_period
from gbdist.compute.select import select_gb_region
from gbdist.datasets.olmsted import default_root
from gbdist.io.read import ReadParams, read_structure


def survey_descriptions(path: Path) -> dict[int, list[tuple[tuple[int, ...], float, str]]]:
    """{GB: [(axis family (sorted |indices|), angle °, 'tilt' | 'twist' | 'mixed')]} from fcc1-2.txt."""
    found: dict[int, list] = {}
    current = None
    for line in path.read_text().splitlines():
        head = re.search(r"GB_index:\s*(\d+)", line)
        if head:
            current = int(head.group(1))
            found.setdefault(current, [])
            continue
        parts = line.split()
        if current and len(parts) == 13 and parts[11] in ("tilt", "twist", "mixed"):
            found[current].append((tuple(sorted(abs(int(p)) for p in parts[:3])), float(parts[4]), parts[11]))
    return found


def main(numbers: list[int]) -> None:
    root = Path(default_root())
    survey = survey_descriptions(root / "supplement" / "fcc1-2.txt")
    counts = {"match": 0, "other axis": 0, "none": 0, "twist": 0, "missed": 0}
    t0 = time.perf_counter()
    for gb in numbers or sorted(survey):
        s = read_structure(str(root / "dumps" / f"ni.p{gb}.out.xz"), ReadParams(element="Ni"))  # no element column
        selection = select_gb_region(s)
        axis = bicrystal_tilt_axis(s.positions, s.cell, s.pbc, structure_types(s) == FCC, selection.normal,
                                   selection.extent)
        tilts = [(family, angle) for family, angle, kind in survey[gb]
                 if kind == "tilt" and fcc_period(np.array(family)) <= 1.8]
        if axis is None:
            twist = min(survey[gb], key=lambda d: d[1])[2] == "twist"
            key = "none" if not tilts else "twist" if twist else "missed"
        else:
            family = tuple(sorted(int(i) for i in np.abs(axis.indices)))
            key = "match" if any(f == family and abs(a - axis.angle) < 0.5 for f, a in tilts) else "other axis"
        counts[key] += 1
        if key in ("other axis", "twist", "missed"):
            found = "none" if axis is None else f"{axis.label} {axis.angle:g}°"
            listed = [(f, a) for f, a, kind in survey[gb] if kind == "tilt"]
            print(f"ni.p{gb}: {key}: detected {found}; the survey's tilt descriptions {listed}")
    print(counts, f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]])
