"""Learning: scores and baselines, leakage, labels, and the Table I protocol end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from typer.testing import CliRunner

import gbdist.learning.models as learn
from gbdist.cli import app
from gbdist.errors import GbdistError
from gbdist.learning.final import load_model
from gbdist.learning.labels import align_labels, read_labels_csv
from gbdist.learning.models import ModelParams, energy_score, evaluate_split, random_halves, random_prediction

from conftest import OLMSTED

runner = CliRunner()
FAST = ModelParams(max_rounds=30, early_stopping=5, grid=[{"max_depth": 2}, {"max_depth": 3}])


def test_energy_score_is_one_minus_rmse_over_mean():
    y = np.array([1.0, 2.0, 3.0])
    assert energy_score(y, y + 0.2) == pytest.approx(90.0)
    assert energy_score(y, y - np.array([0.3, 0.0, -0.3])) == pytest.approx(100 * (1 - np.sqrt(0.06) / 2))


def test_random_baselines_draw_from_the_training_distribution():
    rng = np.random.default_rng(1)
    y_train = rng.normal(1.2, 0.3, 500)
    draws = random_prediction(y_train, 200_000, "regression", rng)
    assert draws.mean() == pytest.approx(y_train.mean(), abs=0.005)
    assert draws.std() == pytest.approx(y_train.std(), abs=0.005)
    classes = np.array([0] * 60 + [2] * 30 + [3] * 10)
    picks = random_prediction(classes, 100_000, "classification", rng)
    assert set(np.unique(picks)) == {0, 2, 3}
    assert np.bincount(picks, minlength=4)[[0, 2, 3]] / len(picks) == pytest.approx([0.6, 0.3, 0.1], abs=0.01)


def test_random_halves_are_disjoint_covering_and_seeded():
    splits = random_halves(101, 5, seed=3)
    for train, test in splits:
        assert len(train) == 50 and not set(train) & set(test)
        assert sorted(np.concatenate([train, test])) == list(range(101))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(splits, random_halves(101, 5, seed=3)))
    assert not np.array_equal(splits[0][0], random_halves(101, 5, seed=4)[0][0])


@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_no_held_out_row_reaches_tuning_or_training(monkeypatch, kind):
    """Every labelled matrix built (CV folds and final fit) holds training rows only."""
    n = 60
    rng = np.random.default_rng(0)
    X = np.column_stack([np.arange(n), rng.normal(size=(n, 4))])  # column 0 names the row
    y = (X[:, 1] > 0).astype(np.int32) if kind == "classification" else X[:, 1] + 2.0
    train, test = random_halves(n, 1, seed=5)[0]
    seen = []
    real = xgb.DMatrix

    class Spy(real):
        def __init__(self, data, *args, label=None, **kw):
            if label is not None:
                seen.append(np.asarray(data)[:, 0].astype(np.float64))
            super().__init__(data, *args, label=label, **kw)

    monkeypatch.setattr(learn.xgb, "DMatrix", Spy)
    out = evaluate_split(X, y, train, test, kind, 2 if kind == "classification" else 0, FAST, seed=0)
    # inputs are standardised with the training rows' statistics: undo that to name the rows
    ids = [column * X[train, 0].std() + X[train, 0].mean() for column in seen]
    assert ids and all(np.allclose(i, np.round(i), atol=1e-3) for i in ids)
    assert all(set(np.round(i).astype(int).tolist()) <= set(train.tolist()) for i in ids)
    assert len(out["pred"]) == len(test)


def test_labels_csv_errors_name_the_file_and_the_ids(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("id,energy,phase\nni.p1,1.0,0\nni.p2,0.5,1\nni.p999,0.7,1\nx.q,0.2,0\n")
    frame = read_labels_csv(path)
    with pytest.raises(GbdistError, match=r"labels.csv: 2 id\(s\) match no structure in the store: ni.p999, x.q"):
        align_labels(frame, np.array(["ni.p1", "ni.p2", "ni.p3"]))
    props = align_labels(frame.loc[["ni.p1", "ni.p2"]], np.array(["ni.p2", "ni.p3", "ni.p1"]))
    energy, phase = props
    assert energy.kind == "regression" and energy.rows.tolist() == [0, 2] and energy.y.tolist() == [0.5, 1.0]
    assert phase.kind == "classification" and phase.classes == (0, 1)
    (tmp_path / "noid.csv").write_text("name,energy\na,1\n")
    with pytest.raises(GbdistError, match="noid.csv: no 'id' column"):
        read_labels_csv(tmp_path / "noid.csv")
    (tmp_path / "text.csv").write_text("id,energy\na,high\n")
    with pytest.raises(GbdistError, match="text.csv: column 'energy' is not numeric"):
        read_labels_csv(tmp_path / "text.csv")


def test_olmsted_labels_and_the_papers_random_baselines():
    """The random baselines of Table I land within 2 points of the paper's on the real labels."""
    if not (OLMSTED / "trends").exists():
        pytest.skip(f"real Olmsted labels not found at {OLMSTED} (read from ../shared, never copied)")
    from gbdist.datasets.olmsted import PAPER_TABLE1, olmsted_labels, structure_id

    frame = olmsted_labels(OLMSTED)
    props = align_labels(frame, np.array([structure_id(i) for i in range(1, 389)]))
    assert [p.name for p in props] == ["energy", "mobility_trend", "shear_coupling"]
    assert np.bincount(props[1].y).tolist() == [221, 79, 52, 36] and props[2].y.sum() == 156
    for prop in props:
        rng = np.random.default_rng(0)
        got = [learn.scores(prop.y[te], random_prediction(prop.y[tr], len(te), prop.kind, rng), prop.kind)["score"]
               for tr, te in random_halves(388, 50, seed=0)]
        assert abs(np.mean(got) - PAPER_TABLE1[prop.name]["random"]) < 2.0, (prop.name, np.mean(got))


def _evaluate(store, labels, out, scheduler_address, *extra):
    result = runner.invoke(app, ["evaluate", "--store", str(store), "--labels", str(labels), "--out", str(out),
                                 "--splits", "3", "--scheduler", scheduler_address, "--no-verbose", *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / "table1.json").read_text())


def test_table1_protocol_end_to_end_and_reproducible(learning_store, tmp_path, scheduler_address):
    store, labels = learning_store
    table = _evaluate(store, labels, tmp_path / "a", scheduler_address)
    assert set(table) == {"energy", "disordered"}
    for cells in table.values():
        assert set(cells) == {"ASR", "ASR_area", "LER", "random"}
        for cell in cells.values():
            assert len(cell["scores"]) == 3 and cell["mean"] == pytest.approx(np.mean(cell["scores"]))
    # a learnable target: the models beat the random baseline on every split
    assert min(table["energy"]["ASR"]["scores"]) > max(table["energy"]["random"]["scores"])
    for name in ("table1.md", "run.json", "parity_energy.png", "confusion_disordered.png"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    predictions = pd.read_csv(tmp_path / "a" / "predictions.csv")
    assert len(predictions) == 2 * 4 * 3 * 12  # properties × (ASR, ASR_area, LER, random) × splits × held-out

    assert _evaluate(store, labels, tmp_path / "b", scheduler_address) == table
    other = _evaluate(store, labels, tmp_path / "c", scheduler_address, "--seed", "1")
    assert other["energy"]["ASR"]["scores"] != table["energy"]["ASR"]["scores"]


def test_learn_saves_models_that_reload_without_pickle(learning_store, tmp_path, scheduler_address):
    store, labels = learning_store
    out = tmp_path / "models"
    result = runner.invoke(app, ["learn", "--store", str(store), "--labels", str(labels), "--out", str(out),
                                 "--scheduler", scheduler_address, "--no-verbose"])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "models.json").read_text())
    assert {(m["property"], m["representation"]) for m in meta["models"]} == {
        (p, r) for p in ("energy", "disordered") for r in ("ASR", "ASR_area", "LER")}
    import zarr

    asr = zarr.open_group(str(store), mode="r")["asr"][:]
    booster, scaler = load_model(out / "energy_ASR.ubj")
    pred = booster.predict(xgb.DMatrix(scaler.transform(asr), feature_names=booster.feature_names))
    truth = pd.read_csv(labels)["energy"].to_numpy()
    assert np.corrcoef(pred, truth)[0, 1] > 0.8
    assert not list(out.glob("*.pkl")) and not list(out.glob("*.pickle"))


def test_unknown_label_ids_are_a_usage_error(learning_store, tmp_path):
    store, labels = learning_store
    bad = tmp_path / "bad.csv"
    bad.write_text(labels.read_text() + "gb99,1.0,1\n")
    result = runner.invoke(app, ["evaluate", "--store", str(store), "--labels", str(bad), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "bad.csv: 1 id(s) match no structure in the store: gb99" in " ".join(result.output.split())
