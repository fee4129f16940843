"""Check: what one read of a store's whole ``soap`` array costs, in wall time and in CPU.

    .venv/bin/python notebooks/experiments/read_pass.py --store out/bench-10x/scale-10x.zarr [--processes 2] [--drop-caches]

The floor of any stage that streams the SOAP rows once: ``processes`` processes read every
chunk through Zarr (chunk k by process k mod processes) and do nothing with it. Prints the
wall time, the GB read (decompressed) and the CPU seconds of the readers, user and system
apart: reading a file that is not in the page cache costs the kernel CPU (system time) as
well as waiting. ``--drop-caches`` first writes back and drops the page cache (root only;
``sync; echo 1 > /proc/sys/vm/drop_caches``), so the read starts cold.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor

import zarr


def read_chunks(store: str, chunks: list[int]) -> tuple[int, float, float]:
    """Read ``soap`` chunks; (bytes decompressed, user CPU-s, system CPU-s) of this process."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    soap = zarr.open_group(store, mode="r")["soap"]
    rows = soap.chunks[0]
    nbytes = sum(soap[k * rows:(k + 1) * rows].nbytes for k in chunks)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return nbytes, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def read_pass(store: str, processes: int) -> dict:
    """One read of every ``soap`` chunk by ``processes`` processes: wall s, GB, user and system CPU-s."""
    soap = zarr.open_group(store, mode="r")["soap"]
    n_chunks = -(-soap.shape[0] // soap.chunks[0])
    t0 = time.perf_counter()
    with ProcessPoolExecutor(processes) as pool:
        parts = list(pool.map(read_chunks, [store] * processes,
                              [list(range(p, n_chunks, processes)) for p in range(processes)]))
    return {"chunks": n_chunks, "wall_s": time.perf_counter() - t0, "gb": sum(p[0] for p in parts) / 1e9,
            "user_s": sum(p[1] for p in parts), "system_s": sum(p[2] for p in parts)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--drop-caches", action="store_true", help="drop the page cache first (root only)")
    args = parser.parse_args(argv)
    if args.drop_caches:
        if os.geteuid() != 0:
            raise SystemExit("--drop-caches: only root can drop the page cache")
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("1\n")
    r = read_pass(args.store, args.processes)
    print(f"{args.store}: {r['chunks']} chunks, {r['gb']:.1f} GB decompressed, {args.processes} processes: "
          f"wall {r['wall_s']:.1f} s, CPU {r['user_s']:.1f} s user + {r['system_s']:.1f} s system")


if __name__ == "__main__":
    main()
