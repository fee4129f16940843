"""The experiment scripts in notebooks/experiments run on a small store and print every cell."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_classifiers_script_scores_every_cell(learning_store):
    store, labels = learning_store
    run = subprocess.run([sys.executable, str(ROOT / "notebooks/experiments/classifiers.py"), "--store", str(store),
                          "--labels", str(labels), "--property", "disordered", "--splits", "2"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = [line.split() for line in run.stdout.splitlines()]
    assert len(lines) == 2 * 5, run.stdout  # (ASR, LER) × five classifiers
    for line in lines:
        mean, std = float(line[3]), float(line[5])
        assert 0 <= mean <= 100 and std >= 0


def test_featomic_asr_of_one_boundary(learning_store):
    pytest.importorskip("featomic", reason="featomic is an optional experiment dependency (pip install featomic)")
    sys.path.insert(0, str(ROOT / "notebooks/experiments"))
    from featomic_asr import featomic_asr_of_gb

    from gbdist.store.schema import open_group

    group = open_group(str(learning_store[0]), mode="r")
    offset = group["gb/offset"][:2]
    asr = featomic_asr_of_gb(str(group["gb/source"][0]), group["lae/atom"][offset[0]:offset[1]],
                             int(group["gb/normal"][0]), 4, 4, group.attrs["params"]["read"])
    assert asr.shape == (4 * 4 * 5,)  # n_max² (l_max + 1) for one species
    assert 0.5 < np.linalg.norm(asr) <= 1.0 + 1e-6  # a mean of similar unit vectors


FCC1_4 = """\
1 0 0   4/5 36.8699  3 1 0    3 1 0    tilt     (1)   1
1 1 1   1/2 60  2 2 2    2 2 2    twist    (1)   1
1 0 0   3/5 53.1301  3 2 1    3 2 1    mixed    (2)   2 3
1 1 0   7/9 38.9424  8 5 1    7 5 4    mixed    (1)   2
"""
FCC1_3 = "GB_index: 1 Sigma: 5 Misorientation_index: 1\n\nGB_index: 2 Sigma: 9 Misorientation_index: 2\n" \
         "GB_index: 3 Sigma: 5 Misorientation_index: 3\n"


def _supplement(tmp_path, fcc1_4=FCC1_4, fcc1_3=FCC1_3):
    (tmp_path / "supplement").mkdir()
    (tmp_path / "supplement/fcc1-4.txt").write_text(fcc1_4)
    (tmp_path / "supplement/fcc1-3.txt").write_text(fcc1_3)
    sys.path.insert(0, str(ROOT / "notebooks/experiments"))
    import crystallography
    return crystallography


def test_crystal_descriptors_take_the_disorientation_of_every_listed_gb(tmp_path):
    crystallography = _supplement(tmp_path)
    table = crystallography.crystal_descriptors(tmp_path)
    assert list(table.index) == ["ni.p1", "ni.p2", "ni.p3"]
    assert list(table.columns) == crystallography.CRYSTAL_FEATURES
    assert table.loc["ni.p1", "angle_deg"] == pytest.approx(36.8699)  # smaller of 36.87 and 60
    assert table.loc["ni.p1", "tilt"] == 1 and table.loc["ni.p1", "twist"] == 0
    assert table.loc["ni.p2", "angle_deg"] == pytest.approx(38.9424)  # its own row beats the shared 53.13
    assert table.loc["ni.p3", "angle_deg"] == pytest.approx(53.1301)  # from the row shared by GBs 2 and 3
    np.testing.assert_allclose(table.loc["ni.p2", ["axis_0", "axis_1", "axis_2"]], np.array([1, 1, 0]) / np.sqrt(2))
    np.testing.assert_allclose(table.loc["ni.p2", "normal_a_0":"normal_b_2"],
                               np.r_[np.array([8, 5, 1]) / np.sqrt(90), np.array([7, 5, 4]) / np.sqrt(90)])
    np.testing.assert_allclose(table["ln_sigma"], np.log([5, 9, 5]))


def test_crystal_descriptors_name_the_file_and_line_of_a_bad_row(tmp_path):
    crystallography = _supplement(tmp_path, fcc1_4=FCC1_4 + "1 0 0  4/5  x  3 1 0  3 1 0  tilt (1) 4\n")
    with pytest.raises(crystallography.GbdistError, match=r"fcc1-4.txt:5: not an axis/angle row"):
        crystallography.crystal_descriptors(tmp_path)


def test_soap_moments_match_a_per_gb_numpy_pass(learning_store):
    sys.path.insert(0, str(ROOT / "notebooks/experiments"))
    from soap_moments import density_features, soap_std

    from gbdist.store.schema import open_group

    group = open_group(str(learning_store[0]), mode="r")
    offsets, soap = group["gb/offset"][:], group["soap"][:]
    norm, cna = group["lae/soap_norm"][:], group["lae/cna"][:]
    density = density_features(norm, cna, offsets)
    std = soap_std(group["soap"], offsets, group["asr"][:], rows_per_read=97)  # blocks cut through GBs
    for i in (0, len(offsets) - 2):
        rows = slice(offsets[i], offsets[i + 1])
        np.testing.assert_allclose(density[i, :2], [norm[rows].mean(), norm[rows].std()], rtol=1e-5)
        np.testing.assert_allclose(density[i, 2:], [np.mean(cna[rows] == k) for k in (1, 2, 5)])
        np.testing.assert_allclose(std[i], soap[rows].std(axis=0), atol=1e-5)
    assert np.allclose(density[:, 2:].sum(axis=1), 1)


def test_soap_moments_script_scores_every_representation(learning_store):
    store, labels = learning_store
    run = subprocess.run([sys.executable, str(ROOT / "notebooks/experiments/soap_moments.py"), "--store", str(store),
                          "--labels", str(labels), "--property", "disordered", "--splits", "2", "--workers", "1"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    cells = {line.split()[1]: float(line.split()[2]) for line in run.stdout.splitlines()}
    assert set(cells) == {"ASR", "density", "ASR+density", "ASR+std", "random"}, run.stdout
    assert all(0 <= score <= 100 for score in cells.values())


def test_tilt_axes_against_the_survey(capsys):
    from conftest import olmsted_dump

    olmsted_dump(1)  # skips where the Olmsted data are absent
    sys.path.insert(0, str(ROOT / "notebooks/experiments"))
    from tilt_axes import main

    main([1, 2, 94])  # a <100> tilt, a Σ5 twist that also has a tilt description, a long-period tilt
    out = capsys.readouterr().out
    assert "'match': 1, 'other axis': 1, 'none': 0, 'twist': 1, 'missed': 0" in out, out
    assert "ni.p2: twist" in out and "ni.p94: other axis" in out


def test_read_pass_reads_every_soap_byte_once(learning_store):
    import zarr

    store, _ = learning_store
    sys.path.insert(0, str(ROOT / "notebooks/experiments"))
    from read_pass import read_pass

    soap = zarr.open_group(str(store), mode="r")["soap"]
    result = read_pass(str(store), 2)
    assert result["chunks"] == -(-soap.shape[0] // soap.chunks[0])
    assert result["gb"] * 1e9 == soap.shape[0] * soap.shape[1] * 4  # every row once, decompressed
    assert result["wall_s"] > 0 and result["user_s"] + result["system_s"] > 0


def test_leader_cost_times_both_searches_and_counts_the_leaders_in_reach(learning_store):
    store, _ = learning_store
    sys.path.insert(0, str(ROOT / "notebooks/experiments"))
    from leader_cost import leader_cost

    r = leader_cost(str(store), chunks=3, repeats=1)
    assert r["eps"] == 0.032 and r["leaders"] >= 2 and r["rows"] > 0
    assert min(r["screen_us"], r["hot_pass_us"], r["assign_us"]) >= 0
    assert 0 <= r["open_share"] <= 1 and r["candidates_own"] <= r["candidates_group"] <= r["leaders"]


def test_paired_table1_scores_each_split_and_refuses_other_splits(tmp_path):
    import pandas as pd

    sys.path.insert(0, str(ROOT / "notebooks/experiments"))
    from paired_table1 import paired

    rows = []
    for split in range(4):  # two GBs held out per split; run "b" gets one more class right in splits 0 and 1
        for gb, true in ((f"g{split}", 1), (f"h{split}", 0)):
            rows.append({"property": "mobility_trend", "representation": "LER", "split": split, "id": gb,
                         "true": true, "predicted_a": 0, "predicted_b": true if split < 2 else 0})
            rows.append({"property": "energy", "representation": "ASR", "split": split, "id": gb,
                         "true": 1.25 - 0.5 * true, "predicted_a": 1.0, "predicted_b": 1.0})
    frame = pd.DataFrame(rows)
    for run in "ab":
        (tmp_path / run).mkdir()
        frame.rename(columns={f"predicted_{run}": "predicted"}).drop(columns=[f"predicted_{'ba'[run == 'b']}"]).to_csv(
            tmp_path / run / "predictions.csv", index=False)
    table = paired(tmp_path / "a", tmp_path / "b")
    mobility = table.loc[("mobility_trend", "LER")]
    assert (mobility["first"], mobility["second"], mobility["difference"]) == (50.0, 75.0, 25.0)
    assert mobility["standard_error"] == pytest.approx(np.std([50, 50, 0, 0], ddof=1) / 2)
    energy = table.loc[("energy", "ASR")]  # 100 (1 − RMSE 0.25 ÷ mean 1) in both
    assert (energy["first"], energy["second"], energy["difference"]) == pytest.approx((75.0, 75.0, 0.0))
    other = frame.assign(id=frame["id"].str.replace("h3", "x3")).rename(columns={"predicted_b": "predicted"})
    other.drop(columns=["predicted_a"]).to_csv(tmp_path / "b" / "predictions.csv", index=False)
    with pytest.raises(SystemExit, match="hold out different GBs"):
        paired(tmp_path / "a", tmp_path / "b")
