"""No unsafe loading anywhere: no pickle for data or models, YAML through safe loading only."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "gbdist"
UNSAFE = {
    r"\bimport (c?pickle|dill|joblib|shelve)\b|\bfrom (c?pickle|dill|joblib|shelve) import": "a pickle-based module",
    r"\bpickle\.loads?\(": "pickle loading",
    r"yaml\.(load|unsafe_load|full_load)\(": "YAML loading other than yaml.safe_load",
    r"allow_pickle\s*=\s*True": "numpy loading with pickles allowed",
    r"\beval\(|\bexec\(": "eval/exec of text",
}


def test_no_unsafe_loading_in_the_package():
    sources = list(PACKAGE.rglob("*.py"))
    assert len(sources) > 20
    found = [f"{path.relative_to(PACKAGE.parent)}:{n}: {what}"
             for path in sources for n, line in enumerate(path.read_text().splitlines(), 1)
             for pattern, what in UNSAFE.items() if re.search(pattern, line)]
    assert not found, found


def test_the_job_file_is_read_with_safe_yaml(tmp_path):
    from gbdist.errors import GbdistError
    from gbdist.workflows.job import load_job

    job = tmp_path / "job.yaml"
    job.write_text("store: s.zarr\ninputs: !!python/object/apply:os.system ['echo pwned']\n")
    try:
        load_job(job)
    except GbdistError as err:
        assert "not valid YAML" in str(err)
    else:  # pragma: no cover
        raise AssertionError("a python-object YAML tag was accepted")
