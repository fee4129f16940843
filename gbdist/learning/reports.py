"""Write learning results to a folder: Table I as Markdown + JSON, predictions, figures, curves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from gbdist.learning.labels import Property
from gbdist.learning.plots import confusion_plot, learning_curve_plot, parity_plot
from gbdist.learning.protocol import CellResult

SCORE_NAMES = {"regression": "100·(1 − RMSE/mean)", "classification": "accuracy"}


def table1_json(results: dict[str, dict[str, CellResult]]) -> dict:
    """``{property: {"ASR"|"LER"|"random": {"mean", "std", "scores", …secondary}}}``."""
    return {prop: {rep: cell.summary() for rep, cell in cells.items()} for prop, cells in results.items()}


def table1_markdown(table: dict, props: list[Property], n_splits: int, paper: dict | None = None,
                    ler_eps: float | None = None) -> str:
    """Markdown table of mean ± std per cell, with the paper's numbers beside ours when given."""
    reps = list(next(iter(table.values())))
    paper_reps = [r for r in reps if paper and any(r in cells for cells in paper.values())]
    header = ["property", "score"] + reps + [f"paper {r}" for r in paper_reps]
    lines = [f"Mean ± std over {n_splits} random 50/50 splits (tuned and fitted on the training half)."
             + (f" LER: the unique LAEs at eps {ler_eps:.4f}." if ler_eps is not None else ""), "",
             "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    kinds = {p.name: p.kind for p in props}
    for prop, cells in table.items():
        row = [prop, SCORE_NAMES[kinds[prop]]] + [f"{cells[r]['mean']:.1f} ± {cells[r]['std']:.1f}" for r in reps]
        row += [f"{paper[prop][r]:.1f}" if r in paper.get(prop, {}) else "–" for r in paper_reps]
        lines.append("| " + " | ".join(row) + " |")
    secondary = [(prop, r, key, v) for prop, cells in table.items() for r in reps
                 for key, v in cells[r].items() if isinstance(v, dict)]
    if secondary:
        lines += ["", "| property | representation | figure | mean ± std |", "| --- | --- | --- | --- |"]
        lines += [f"| {p} | {r} | {k} | {v['mean']:.4g} ± {v['std']:.2g} |" for p, r, k, v in secondary]
    return "\n".join(lines) + "\n"


def write_predictions(path: Path, results: dict[str, dict[str, CellResult]], props: list[Property],
                      gb_ids: np.ndarray) -> None:
    """Every held-out prediction: property, representation, split, GB id, true and predicted value."""
    truth = {p.name: dict(zip(p.rows.tolist(), p.y.tolist())) for p in props}
    classes = {p.name: p.classes for p in props}
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["property", "representation", "split", "id", "true", "predicted"])
        for prop, cells in results.items():
            decode = (lambda c, k=classes[prop]: k[int(c)]) if classes[prop] else float
            for rep, cell in cells.items():
                for split, rows, pred in cell.predictions:
                    for row, value in zip(rows.tolist(), pred.tolist()):
                        writer.writerow([prop, rep, split, gb_ids[row], decode(truth[prop][row]), decode(value)])


def write_figures(out: Path, results: dict[str, dict[str, CellResult]], props: list[Property]) -> list[Path]:
    """Parity plots (regression) and summed confusion matrices (classification) over all splits."""
    written = []
    for prop in props:
        cells = {rep: c for rep, c in results[prop.name].items() if rep != "random"}
        truth = dict(zip(prop.rows.tolist(), prop.y.tolist()))
        pairs = {rep: (np.array([truth[r] for _, rows, _ in c.predictions for r in rows.tolist()]),
                       np.concatenate([pred for _, _, pred in c.predictions])) for rep, c in cells.items()}
        if prop.kind == "regression":
            path = out / f"parity_{prop.name}.png"
            parity_plot(path, pairs, prop.name)
        else:
            path = out / f"confusion_{prop.name}.png"
            k = prop.n_classes
            counts = {rep: np.bincount(t.astype(int) * k + p.astype(int), minlength=k * k).reshape(k, k)
                      for rep, (t, p) in pairs.items()}
            confusion_plot(path, counts, prop.classes, prop.name)
        written.append(path)
    return written


def write_table1(out: Path, results, props: list[Property], gb_ids: np.ndarray, n_splits: int,
                 run_info: dict, paper: dict | None = None) -> dict:
    """All Table I outputs into ``out``; returns the JSON table."""
    out.mkdir(parents=True, exist_ok=True)
    table = table1_json(results)
    (out / "table1.json").write_text(json.dumps(table, indent=1))
    (out / "table1.md").write_text(table1_markdown(table, props, n_splits, paper, run_info.get("ler_eps")))
    (out / "run.json").write_text(json.dumps(run_info | ({"paper": paper} if paper else {}), indent=1))
    write_predictions(out / "predictions.csv", results, props, gb_ids)
    write_figures(out, results, props)
    return table


def write_learning_curve(out: Path, rows: list[dict], prop: str) -> None:
    """``curve_<property>.csv`` and ``.png``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"curve_{prop}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    learning_curve_plot(out / f"curve_{prop}.png", rows, f"learning curve: {prop}")
    (out / f"curve_{prop}.md").write_text(curve_markdown(rows, prop))


def curve_markdown(rows: list[dict], prop: str) -> str:
    """``curve_<property>.md``: the curve's picture and its table (mean ± std per point)."""
    balanced = "balanced_mean" in rows[0]
    lines = [f"# Learning curve: {prop}", "", f"![learning curve](curve_{prop}.png)", "",
             f"Held-out score against training GBs, mean ± std over {rows[0]['n_fits']} random splits per point"
             + (" (accuracy, and balanced accuracy)." if balanced else "."), "",
             "| representation | fraction | training GBs | score |" + (" balanced accuracy |" if balanced else ""),
             "| --- | --- | --- | --- |" + (" --- |" if balanced else "")]
    for r in rows:
        cells = [r["representation"], f"{r['fraction']:.2f}", str(r["n_train"]), f"{r['mean']:.1f} ± {r['std']:.1f}"]
        if balanced:
            cells.append(f"{r['balanced_mean']:.1f} ± {r['balanced_std']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
