"""Check: two Table I runs on the same boundaries, compared split by split.

    .venv/bin/python notebooks/experiments/paired_table1.py out/table1-dscribe out/table1-featomic

``gbdist evaluate`` with the same ``--seed`` and ``--splits`` holds out the same GBs in each
split, whatever the store (two SOAP backends, two eps). The spread of one cell over the splits
(its ± in ``table1.md``) is mostly the luck of the split, which both runs share; the paired
difference of the two scores per split tells whether one run is really better. Reads both
``predictions.csv``, scores every split as ``gbdist evaluate`` does, and prints per cell:
the two means, their difference (second − first) and its standard error over the splits.
Runs whose splits hold out different GBs are refused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from gbdist.learning.labels import property_kind
from gbdist.learning.models import scores


def split_scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """Headline score (%) per (property, representation, split), as ``gbdist evaluate`` scores a split."""
    kinds = {name: property_kind(group["true"]) for name, group in predictions.groupby("property")}
    rows = [{"property": prop, "representation": rep, "split": split,
             "score": scores(g["true"].to_numpy(), g["predicted"].to_numpy(), kinds[prop])["score"]}
            for (prop, rep, split), g in predictions.groupby(["property", "representation", "split"])]
    return pd.DataFrame(rows)


def paired(first: Path, second: Path) -> pd.DataFrame:
    """Per cell: mean score of each run, mean paired difference (second − first) and its standard error."""
    a, b = (pd.read_csv(run / "predictions.csv", dtype={"id": str}) for run in (first, second))
    keys = ["property", "representation", "split"]
    held_out = [frame.groupby(keys)["id"].apply(frozenset) for frame in (a, b)]
    common = held_out[0].index.intersection(held_out[1].index)
    if not (held_out[0][common] == held_out[1][common]).all():
        raise SystemExit(f"{first} and {second} hold out different GBs in some split (another --seed?)")
    both = split_scores(a).merge(split_scores(b), on=keys, suffixes=("_first", "_second"))
    both["difference"] = both["score_second"] - both["score_first"]
    return both.groupby(["property", "representation"]).agg(
        first=("score_first", "mean"), second=("score_second", "mean"), difference=("difference", "mean"),
        standard_error=("difference", lambda d: d.std(ddof=1) / np.sqrt(len(d))), splits=("split", "count"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="a gbdist evaluate --out folder")
    parser.add_argument("second", type=Path, help="another, same --seed and --splits")
    args = parser.parse_args(argv)
    table = paired(args.first, args.second)
    print(f"second = {args.second}, first = {args.first}")
    print("| property | representation | first | second | second − first | standard error | splits |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (prop, rep), r in table.iterrows():
        print(f"| {prop} | {rep} | {r['first']:.1f} | {r['second']:.1f} | {r['difference']:+.2f} | "
              f"{r['standard_error']:.2f} | {int(r['splits'])} |")


if __name__ == "__main__":
    main()
