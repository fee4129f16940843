"""`gbdist fetch olmsted`: pinned URLs and sha256, tested offline against a local HTTP server."""

from __future__ import annotations

import hashlib
import lzma
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gbdist.cli import app
from gbdist.datasets.olmsted_fetch import fetch_olmsted, pinned_sha256, source_url

from conftest import OLMSTED

runner = CliRunner()
BASE = "http://127.0.0.1:{port}"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server over ``tmp_path/www``; yields (www folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def publish(www: Path, base: str, name: str, data: bytes) -> None:
    """Put ``data`` where the pinned URL of ``name`` points, on the mirror."""
    path = www / source_url(name, base).removeprefix(base + "/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_pinned_list_covers_every_dump_and_table():
    pins = pinned_sha256()
    assert sum(n.startswith("dumps/") for n in pins) == 388
    assert {"supplement/fcc1-1.txt", "trends/mobility_trend.csv", "trends/shear_coupling.csv"} <= set(pins)
    assert source_url("dumps/ni.p7.out").endswith(
        "rosenbrockc/gblearn/259fdb29975de07353223622df4814b184541f68/gblearn/gbs/olmsted/ni.p7.out")


def test_fetch_lays_out_checked_files_and_rejects_a_tampered_one(mirror, tmp_path):
    www, base = mirror
    files = {"dumps/ni.p1.out": b"ITEM: TIMESTEP\n0\n", "dumps/ni.p2.out": b"ITEM: TIMESTEP\n1\n",
             "supplement/fcc1-1.txt": b"GB_index Ni Al\n1 1.2 0.4\n", "trends/mobility_trend.csv": b"PID,M4\n1,0\n"}
    registry = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    for name, data in files.items():
        publish(www, base, name, data)
    dest = tmp_path / "olmsted"
    fetch_olmsted(dest, base, registry=registry)
    assert lzma.decompress((dest / "dumps" / "ni.p2.out.xz").read_bytes()) == files["dumps/ni.p2.out"]
    assert (dest / "trends" / "mobility_trend.csv").read_bytes() == files["trends/mobility_trend.csv"]
    assert not (dest / ".download").exists()
    publish(www, base, "supplement/fcc1-1.txt", b"tampered\n")
    (dest / "supplement" / "fcc1-1.txt").unlink()
    with pytest.raises(Exception, match="supplement/fcc1-1.txt: downloaded file does not match its pinned sha256"):
        fetch_olmsted(dest, base, registry=registry)


def test_fetch_command_against_the_real_pins(mirror, tmp_path):
    """The real ni.p1 dump and tables, served locally, pass the pinned sha256 of the upstream files."""
    if not (OLMSTED / "dumps" / "ni.p1.out.xz").exists():
        pytest.skip(f"real Olmsted data not found at {OLMSTED} (read from ../shared, never copied)")
    www, base = mirror
    publish(www, base, "dumps/ni.p1.out", lzma.decompress((OLMSTED / "dumps" / "ni.p1.out.xz").read_bytes()))
    for name in pinned_sha256():
        if not name.startswith("dumps/"):
            publish(www, base, name, (OLMSTED / name).read_bytes())
    dest = tmp_path / "olmsted"
    result = runner.invoke(app, ["fetch", "olmsted", str(dest), "--only", "1", "--base-url", base, "--no-verbose"])
    assert result.exit_code == 0, result.output
    assert (dest / "dumps" / "ni.p1.out.xz").exists() and (dest / "supplement" / "fcc1-1.txt").exists()
    missing = runner.invoke(app, ["fetch", "olmsted", str(tmp_path / "other"), "--only", "2", "--base-url", base])
    assert missing.exit_code == 2 and "dumps/ni.p2.out: download from" in " ".join(missing.output.split())
