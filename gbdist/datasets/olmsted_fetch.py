"""``gbdist fetch olmsted DEST``: the 388 Olmsted dumps and their tables from their public sources.

Every file comes from a pinned commit and is checked against a pinned sha256 (pooch), then
laid out as ``DEST/dumps/ni.pN.out.xz``, ``DEST/supplement/*.txt`` and ``DEST/trends/*.csv``,
the layout ``gbdist`` and its jobs read. The dumps are published uncompressed; they are
xz-compressed here after the check.
"""

from __future__ import annotations

import logging
import lzma
import re
import shutil
from importlib import resources
from pathlib import Path

import pooch

from gbdist.errors import GbdistError
from gbdist.stages.progress import with_progress

log = logging.getLogger(__name__)

RAW = "https://raw.githubusercontent.com"
GBLEARN = "rosenbrockc/gblearn"
INTERP = "sgbaird-5DOF/interp"
SUPPLEMENT = "code/GB_octonion_code-master_CMU/Data/Olmsted_supp_original"
# (repository, commit, path upstream) of each file of the local layout
_TABLES = {
    "supplement/fcc1-1.txt": (INTERP, "bb9ec277d910ca0dba8668971083a4b5be7ee27f", f"{SUPPLEMENT}/fcc1-1.txt"),
    "supplement/fcc1-2.txt": (INTERP, "bb9ec277d910ca0dba8668971083a4b5be7ee27f", f"{SUPPLEMENT}/fcc1-2.txt"),
    "supplement/fcc1-3.txt": (INTERP, "9686a84ea2dbdb4055f87a4bc772b188992dfe6f", f"{SUPPLEMENT}/fcc1-3.txt"),
    "supplement/fcc1-4.txt": (INTERP, "9686a84ea2dbdb4055f87a4bc772b188992dfe6f", f"{SUPPLEMENT}/fcc1-4.txt"),
    "supplement/fcc1descriptions.txt": (INTERP, "9686a84ea2dbdb4055f87a4bc772b188992dfe6f",
                                        f"{SUPPLEMENT}/fcc1descriptions.txt"),
    "supplement/fcc2-mobility.txt": (INTERP, "bb9ec277d910ca0dba8668971083a4b5be7ee27f",
                                     f"{SUPPLEMENT}/fcc2-mobility.txt"),
    "supplement/fcc2-shear.txt": (INTERP, "bb9ec277d910ca0dba8668971083a4b5be7ee27f", f"{SUPPLEMENT}/fcc2-shear.txt"),
    "supplement/fcc2desciptions.txt": (INTERP, "9686a84ea2dbdb4055f87a4bc772b188992dfe6f",
                                       f"{SUPPLEMENT}/fcc2desciptions.txt"),
    "trends/mobility_trend.csv": (GBLEARN, "e1dfa03b8c48e56c0d223bb07dab12cbcbed6c73", "data/mobility.csv"),
    "trends/shear_coupling.csv": (GBLEARN, "9d3afc4a5bed2b0e1eaa0b5792de43f1a0c273b5", "data/shear.csv"),
}
_DUMPS_COMMIT = "259fdb29975de07353223622df4814b184541f68"  # "adding olmsted"


def pinned_sha256() -> dict[str, str]:
    """{local name (dumps uncompressed): sha256} of every file, from the packaged list."""
    text = resources.files("gbdist.datasets").joinpath("olmsted_sha256.txt").read_text()
    return dict(line.split() for line in text.splitlines() if line and not line.startswith("#"))


def source_url(name: str, base: str = RAW) -> str:
    """Pinned URL of a local file name (``dumps/ni.pN.out`` or a table)."""
    if name.startswith("dumps/"):
        return f"{base}/{GBLEARN}/{_DUMPS_COMMIT}/gblearn/gbs/olmsted/{Path(name).name}"
    repo, commit, path = _TABLES[name]
    return f"{base}/{repo}/{commit}/{path}"


def _dump_number(name: str) -> int:
    return int(re.search(r"ni\.p(\d+)\.out", name).group(1))


def fetch_olmsted(dest: str | Path, base: str = RAW, only: list[int] | None = None,
                  registry: dict[str, str] | None = None) -> list[Path]:
    """Download, check and lay out the Olmsted data in ``dest``; returns the files written.

    ``only``: just these dump numbers (all tables still come). Files already in place are
    kept. A download that fails or does not match its sha256 is an error naming the file.
    """
    dest = Path(dest)
    registry = registry or pinned_sha256()
    names = [n for n in registry if not n.startswith("dumps/") or only is None or _dump_number(n) in only]
    cache = dest / ".download"
    written = []
    for name in with_progress(names, "fetch olmsted"):
        target = dest / (name + ".xz" if name.startswith("dumps/") else name)
        if target.exists():
            written.append(target)
            continue
        try:
            path = pooch.retrieve(source_url(name, base), known_hash=f"sha256:{registry[name]}",
                                  fname=name.replace("/", "__"), path=cache, progressbar=False)
        except ValueError as err:  # pooch: hash mismatch
            raise GbdistError(f"{name}: downloaded file does not match its pinned sha256 ({err})") from None
        except Exception as err:  # network or HTTP error
            raise GbdistError(f"{name}: download from {source_url(name, base)} failed ({err})") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        if name.startswith("dumps/"):
            target.write_bytes(lzma.compress(Path(path).read_bytes()))
        else:
            shutil.copyfile(path, target)
        Path(path).unlink()
        written.append(target)
    shutil.rmtree(cache, ignore_errors=True)
    return written
