"""House rules that CI enforces: ruff clean, the documentation site builds strictly, the README
stays short with its two set-up commands first."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT


def _tool(name: str) -> str:
    path = shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]' brings it)")
    return path


def test_ruff_check_is_clean():
    result = subprocess.run([_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docs_build_strictly(tmp_path):
    result = subprocess.run([_tool("mkdocs"), "build", "--strict", "-f", "docs/mkdocs.yml", "-d", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, env=os.environ | {"NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "store" / "index.html").exists()


def test_readme_is_short_and_starts_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    blocks = re.findall(r"(?m)^    (\S.*)$", text)
    assert blocks[:2] == ['python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/gbdist demo',
                          ".venv/bin/python -m pytest -q"]
    assert blocks[1] in (ROOT / ".ci" / "run").read_text()


def test_only_the_store_package_spells_array_paths():
    spelled = re.compile(r"[\"'](gb|lae|progress|unique|atoms)/[a-z_]+[\"']|f[\"'](gb|lae|progress|unique|atoms)/")
    outside = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "gbdist").rglob("*.py"))
               if "store" not in p.relative_to(ROOT / "gbdist").parts[:1] and spelled.search(p.read_text())]
    assert outside == [], f"array paths spelled outside gbdist/store: {outside}"
