"""Open a chemiscope dataset written by `gbdist map --chemiscope` in a real (headless) browser and save
two screenshots: the map, and one environment open in the structure viewer.

Needs `pip install playwright` and a Chromium (Debian: `apt-get install chromium`); chemiscope's headless
viewer launches Playwright's own Chromium, so this script points it at the system one.

    python notebooks/experiments/chemiscope_screenshots.py DATASET.json.gz OUT_PREFIX [ENVIRONMENT]
"""

from __future__ import annotations

import functools
import gzip
import json
import sys
import time

from playwright.async_api import BrowserType

CHROMIUM = "/usr/bin/chromium"


def _system_chromium() -> None:
    launch = BrowserType.launch

    @functools.wraps(launch)
    async def with_system_chromium(self, *args, **kwargs):
        kwargs.setdefault("executable_path", CHROMIUM)
        return await launch(self, *args, **kwargs)

    BrowserType.launch = with_system_chromium


def _patient(seconds: float) -> None:
    """chemiscope's headless viewer waits 10 s for each browser call; a dataset of a million atoms takes longer."""
    import importlib

    headless = importlib.import_module("chemiscope.headless")  # the module (chemiscope.headless is also a function)
    run_sync = headless.ChemiscopeHeadless._run_sync
    headless.ChemiscopeHeadless._run_sync = lambda self, coro, timeout=seconds: run_sync(self, coro, timeout)


def main(dataset: str, prefix: str, environment: int = 0) -> None:
    import chemiscope

    _system_chromium()
    _patient(600)
    data = json.load(gzip.open(dataset, "rt"))
    t0 = time.perf_counter()
    viewer = chemiscope.headless(data["structures"], properties=data["properties"], metadata=data["meta"],
                                 environments=[(e["structure"], e["center"], e["cutoff"]) for e in data["environments"]],
                                 settings=data["settings"], width=1400, height=800)
    print(f"opened in {time.perf_counter() - t0:.1f} s")
    viewer.save_map_image(f"{prefix}_map.png")
    env = data["environments"][environment]
    (image,) = viewer.get_structure_sequence([{"structure": env["structure"], "atom": env["center"]}])
    with open(f"{prefix}_environment.png", "wb") as fh:
        fh.write(image)
    print(f"environment {environment}: structure {env['structure']}, atom {env['center']}; "
          f"unique LAE {data['properties']['unique LAE']['values'][environment]}, "
          f"boundary {data['properties']['boundary']['values'][environment]}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
