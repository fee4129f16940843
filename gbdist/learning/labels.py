"""Per-GB property labels: a table keyed by the store's ``gb/id``, and what kind each property is.

A labels CSV has an ``id`` column (the structure id, i.e. the file stem such as ``ni.p158``)
and one column per property. Integer columns with few values are classes; the rest are
regression targets. Blank cells mean "not known" and drop that GB for that property only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gbdist.errors import GbdistError

MAX_CLASSES = 20  # an integer column with more distinct values is treated as a regression target


@dataclass(frozen=True)
class Property:
    """One learning target aligned to the store's GBs.

    ``rows`` (m,) are GB positions in the store with a known value; ``y`` (m,) the values
    (float for regression, class codes 0..K-1 for classification); ``classes`` the original
    class values for the codes (empty for regression).
    """

    name: str
    kind: str  # "regression" | "classification"
    rows: np.ndarray
    y: np.ndarray
    classes: tuple = ()

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def read_labels_csv(path: str | Path) -> pd.DataFrame:
    """Read a labels CSV into a frame indexed by ``id`` (str). Errors name the file and the problem."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"id": str})
    except FileNotFoundError:
        raise GbdistError(f"{path}: labels file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise GbdistError(f"{path}: not a readable CSV ({err})") from None
    frame = id_indexed(frame, path, "property")
    frame.attrs["source"] = str(path)
    return frame


def id_indexed(frame: pd.DataFrame, path: Path, what: str) -> pd.DataFrame:
    """``frame`` indexed by its ``id`` column (str), checked: ids present and unique, at least one
    ``what`` column besides, every column numeric. Errors name ``path``."""
    if "id" not in frame.columns:
        raise GbdistError(f"{path}: no 'id' column (columns: {', '.join(map(str, frame.columns))})")
    frame = frame.assign(id=frame["id"].astype(str))
    repeated = frame["id"][frame["id"].duplicated()].unique()
    if len(repeated):
        raise GbdistError(f"{path}: repeated ids {', '.join(repeated[:10])}")
    frame = frame.set_index("id")
    if frame.columns.empty:
        raise GbdistError(f"{path}: no {what} columns besides 'id'")
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise GbdistError(f"{path}: column {column!r} is not numeric")
    return frame


def property_kind(values: pd.Series) -> str:
    """``classification`` for integer-valued columns with at most MAX_CLASSES values, else ``regression``."""
    known = values.dropna()
    integral = np.all(np.equal(np.mod(known, 1), 0))
    return "classification" if integral and known.nunique() <= MAX_CLASSES else "regression"


def align_labels(frame: pd.DataFrame, gb_ids: np.ndarray, names: list[str] | None = None) -> list[Property]:
    """Properties of ``frame`` aligned to the store's ``gb_ids`` (n_gb,).

    Raises when a label id matches no structure in the store (they are named), or when a
    requested property is not a column. A survey's label table (``frame.attrs["survey"]``,
    set for the Olmsted labels) may cover more GBs than the store: only those are used.
    """
    source = frame.attrs.get("source", "labels")
    position = {str(i): k for k, i in enumerate(gb_ids)}
    unknown = [i for i in frame.index if i not in position]
    if unknown and frame.attrs.get("survey") and len(unknown) < len(frame):
        frame = frame.drop(index=unknown)  # a survey's labels, for a store of some of its GBs
    elif unknown:
        shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise GbdistError(f"{source}: {len(unknown)} id(s) match no structure in the store: {shown}")
    names = names or list(frame.columns)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise GbdistError(f"{source}: no property column(s) {', '.join(missing)} "
                          f"(have {', '.join(frame.columns)})")
    out = []
    for name in names:
        column = frame[name].dropna()
        rows = np.array([position[i] for i in column.index], dtype=np.int64)
        order = np.argsort(rows)
        rows, values = rows[order], column.to_numpy()[order]
        if property_kind(column) == "classification":
            classes, codes = np.unique(values.astype(np.int64), return_inverse=True)
            out.append(Property(name, "classification", rows, codes.astype(np.int32), tuple(int(c) for c in classes)))
        else:
            out.append(Property(name, "regression", rows, values.astype(np.float64)))
    return out


def load_labels(spec: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Labels from ``spec``: ``olmsted`` (the Table I labels of the Olmsted survey in
    ``../shared`` or ``$GBDIST_OLMSTED``), a folder in the Olmsted layout, a CSV path, or a
    frame indexed by id (returned as it is)."""
    from gbdist.datasets.olmsted import missing_label_files, olmsted_labels

    if isinstance(spec, pd.DataFrame):
        return spec
    if str(spec) == "olmsted":
        return olmsted_labels()
    path = Path(spec)
    if path.is_dir():
        missing = missing_label_files(path)
        if missing:
            raise GbdistError(f"{path}: a folder given as labels must have the Olmsted layout; it lacks "
                              f"{', '.join(missing)} (or give a labels CSV)")
        return olmsted_labels(path)
    return read_labels_csv(path)
