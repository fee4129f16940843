"""Per-GB feature tables from outside the store, scored on the same protocol as the ASR and LER.

A table is a CSV or Parquet file with an ``id`` column (the store's ``gb/id``) and one
numeric column per feature, or a Zarr array whose first dimension is ``gb`` and whose rows
follow the store's GB order (e.g. ``out/olmsted.zarr/asr``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gbdist.errors import GbdistError
from gbdist.learning.labels import id_indexed


def _read_frame(path: Path) -> pd.DataFrame:
    """A CSV or Parquet table indexed by ``id`` (str), numeric columns only."""
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype={"id": str})
    except FileNotFoundError:
        raise GbdistError(f"{path}: feature table not found") from None
    except ImportError as err:
        raise GbdistError(f"{path}: reading Parquet needs pyarrow ({err})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as err:
        raise GbdistError(f"{path}: not a readable feature table ({err})") from None
    return id_indexed(frame, path, "feature")

def _read_zarr(path: Path, gb_ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    import zarr

    try:
        array = zarr.open_array(str(path), mode="r")
    except Exception as err:  # noqa: BLE001  (zarr raises several kinds for "not an array")
        raise GbdistError(f"{path}: not a Zarr array ({type(err).__name__})") from None
    dims = list(array.metadata.dimension_names or [])
    if array.ndim != 2 or not dims or dims[0] != "gb":
        raise GbdistError(f"{path}: a Zarr feature table is a 2-d array with first dimension 'gb' "
                          f"(this one: shape {array.shape}, dimensions {dims or 'unnamed'})")
    if array.shape[0] != len(gb_ids):
        raise GbdistError(f"{path}: {array.shape[0]} rows, but the store has {len(gb_ids)} GBs")
    return np.asarray(array[...], dtype=np.float32), [f"{path.name}{k}" for k in range(array.shape[1])]


def read_feature_table(path: str | Path, gb_ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The table at ``path`` aligned to the store's ``gb_ids`` (n_gb,): (X (n_gb, n_feat) float32, names).

    GBs the table has no row for get NaN (callers check the labelled ones are present).

    Raises
    ------
    GbdistError
        Naming the file: unreadable, no ``id`` column, repeated or unknown ids, text columns.
    """
    path = Path(path)
    if path.is_dir():
        return _read_zarr(path, gb_ids)
    frame = _read_frame(path)
    known = set(map(str, gb_ids))
    unknown = [i for i in frame.index if i not in known]
    if unknown:
        raise GbdistError(f"{path}: {len(unknown)} id(s) match no structure in the store: {', '.join(unknown[:10])}")
    X = frame.reindex([str(i) for i in gb_ids]).to_numpy(dtype=np.float32)
    return X, [str(c) for c in frame.columns]


def missing_rows(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Those of ``rows`` (GB positions) where X has no values at all (the table lacks the GB)."""
    return rows[np.all(np.isnan(X[rows]), axis=1)]
