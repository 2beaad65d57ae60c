"""The dashboard in a real browser: Debian's chromium driven by Playwright, on `fep app` in a subprocess.

Opt-in (marker ``browser``: ``--run-browser`` or MLFEP_RUN_BROWSER=1; ``make test`` adds the flag when
/usr/bin/chromium exists). Playwright never downloads a browser here: it launches /usr/bin/chromium.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.tiny import TINY_PROTOCOL

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TINY = TINY_PROTOCOL
LIGANDS = "name,smiles,dg_kcal_mol\nbenzene,c1ccccc1,-0.90\ntoluene,Cc1ccccc1,-0.90\n"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (make browser-deps)"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "benzenes.csv").write_text(LIGANDS)
    (folder / "tiny.json").write_text(json.dumps(TINY))
    return {"ligands": folder / "benzenes.csv", "protocol": folder / "tiny.json"}


@pytest.fixture(scope="module")
def runs_with_finished_run(inputs, tmp_path_factory, charge_cache) -> Path:
    """A runs folder holding 'tiny': benzene → toluene (hydration), simulated with the real CLI (~1 min)."""
    from fep.cli import main

    root = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFEP_CACHE_DIR", str(charge_cache))
    code = main(
        [
            "run",
            "--edge",
            "benzene,toluene",
            "--ligands",
            str(inputs["ligands"]),
            "--mode",
            "hydration",
            "--protocol",
            str(inputs["protocol"]),
            "-o",
            str(root / "tiny"),
        ]
    )
    mp.undo()
    assert code == 0
    return root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(runs_with_finished_run, charge_cache):
    """`fep app --runs ROOT --port N` in its own process group; yields the base URL."""
    port = _free_port()
    env = dict(os.environ, MLFEP_CACHE_DIR=str(charge_cache))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    log = runs_with_finished_run.parent / "fep_app.log"
    with open(log, "wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fep", "app", "--runs", str(runs_with_finished_run), "--port", str(port)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"fep app did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # fep app and its streamlit child: the group this test started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = context.new_page()
    page.set_default_timeout(90_000)
    yield page
    context.close()


def _shot(page, folder: Path, name: str) -> Path:
    """A full-page screenshot in ``folder`` (also copied to $MLFEP_SCREENSHOT_DIR when set)."""
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("MLFEP_SCREENSHOT_DIR")
    if keep:
        shutil.copy(path, Path(keep) / name)
    return path


def test_results_page_shows_ranked_table_and_plot(server, page, tmp_path):
    page.goto(f"{server}/results?run=tiny")
    page.get_by_role("heading", name="Ranked ligands").wait_for()
    table = page.locator('[data-testid="stDataFrame"]').first
    table.wait_for()
    # the ranked table: both ligands, with the column headers of the page
    for text in ("benzene", "toluene"):
        table.get_by_text(text, exact=True).first.wait_for(state="attached")
    headers = table.locator('[role="columnheader"]').all_inner_texts()
    assert any("ΔG_hyd" in h for h in headers) and any("experimental" in h for h in headers)
    chart = page.locator('[data-testid="stVegaLiteChart"]').first  # predicted vs experimental
    chart.wait_for()
    chart.locator("canvas, svg").first.wait_for()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 200
    shot = _shot(page, tmp_path, "results.png")
    assert shot.stat().st_size > 20_000


@pytest.mark.slow
def test_launch_from_the_page_and_see_results(server, page, inputs, runs_with_finished_run, tmp_path):
    page.goto(f"{server}/new")
    page.get_by_role("heading", name="New run").wait_for()
    page.get_by_role("textbox", name="Run name").fill("from-browser")
    page.get_by_text("hydration", exact=True).click()
    uploaders = page.locator('[data-testid="stFileUploader"]')
    uploaders.filter(has_text="protocol file").locator('input[type="file"]').set_input_files(str(inputs["protocol"]))
    uploaders.filter(has_text="Ligands").locator('input[type="file"]').set_input_files(str(inputs["ligands"]))
    page.get_by_text("benzenes.csv").first.wait_for()
    page.get_by_role("button", name="Validate and plan").click()
    page.get_by_role("heading", name="Planned network").wait_for(timeout=180_000)
    page.get_by_text("all 2 ligands are valid").wait_for()
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()  # the planned network graph
    page.get_by_text("GPU-hours").first.wait_for()  # the cost estimate
    _shot(page, tmp_path, "planned.png")
    page.get_by_role("button", name="Launch run").click()
    page.get_by_text("started").first.wait_for()
    run_dir = runs_with_finished_run / "from-browser"
    result = run_dir / "edges" / "benzene~toluene" / "edge_result.json"
    deadline = time.monotonic() + 600
    while not result.exists():
        assert time.monotonic() < deadline, (run_dir / "fep_run.log").read_text()[-3000:]
        time.sleep(3)
    assert json.loads(result.read_text())["status"] == "done"
    page.goto(f"{server}/results?run=from-browser")
    table = page.locator('[data-testid="stDataFrame"]').first
    table.get_by_text("toluene", exact=True).first.wait_for(state="attached")
    _shot(page, tmp_path, "launched_results.png")
