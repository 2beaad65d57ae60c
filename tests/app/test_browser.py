"""The dashboard in a real browser: Debian's chromium driven by Playwright, on `fep app` in a subprocess.

Opt-in (marker ``browser``: ``--run-browser`` or MLFEP_RUN_BROWSER=1; ``make test`` adds the flag when
/usr/bin/chromium exists). Playwright never downloads a browser here: it launches /usr/bin/chromium.
"""

from __future__ import annotations

import itertools
import json
import os
import re
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
    "--enable-unsafe-swiftshader",  # software WebGL for the 3D viewer (no GPU in the test machine)
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
def server_and_pgid(runs_with_finished_run, charge_cache):
    """`fep app --runs ROOT --port N` in its own process group; yields the base URL and the group's id."""
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
        yield url, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # fep app and its streamlit child: the group this test started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def server(server_and_pgid) -> str:
    """The base URL of the dashboard."""
    return server_and_pgid[0]


@pytest.fixture(scope="module")
def server_pgid(server_and_pgid) -> int:
    """The process group of `fep app` and its Streamlit server."""
    return server_and_pgid[1]


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


# ------------------------------------------------------------------------------- the launch, progress, control
#: Long enough to be stopped mid-way (some tens of seconds of sampling per leg), short enough for a test.
LONGER = {
    **TINY,
    "name": "tiny-longer",
    "sampler": {**TINY["sampler"], "n_iterations": 24, "checkpoint_interval_s": 0.0},
}


def _proc_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (Z: zombie), None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _zombies_under(pgid: int) -> list[int]:
    """Zombie processes whose parent is in process group ``pgid`` (the dashboard server this module started)."""
    parents, zombies = set(), []
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = fields
    parents = {pid for pid, f in stats.items() if int(f[2]) == pgid}
    for pid, fields in stats.items():
        if fields[0] == "Z" and int(fields[1]) in parents:
            zombies.append(pid)
    return zombies


def _overall(page) -> float:
    """The overall fraction the Progress page's bar shows ('overall 42 % · ...')."""
    text = page.locator('[data-testid="stProgress"]').first.inner_text()
    found = re.search(r"overall (\d+)\s*%", text)
    assert found, text
    return int(found.group(1)) / 100.0


def _wait(condition, what: str, timeout_s: float = 600.0, log: Path | None = None):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out waiting for {what}" + (f": {log.read_text()[-3000:]}" if log and log.exists() else "")
            )
        time.sleep(1.0)


@pytest.fixture(scope="module")
def longer_protocol(inputs) -> Path:
    path = inputs["protocol"].parent / "longer.json"
    path.write_text(json.dumps(LONGER))
    return path


def test_launch_uses_what_is_on_screen_and_stop_and_resume_the_run(
    server, server_pgid, page, inputs, longer_protocol, runs_with_finished_run, tmp_path
):
    """Items 1, 2 and 6 of issue 16 on one launched run: the protocol and run name chosen *after* validating are
    what runs; its progress never goes back (sampled from the page and from the files) across a Stop and a
    Resume; Stop ends the process, which is reaped (no zombie under the dashboard); Resume runs it to the end;
    the run picker then says done."""
    from app import data

    uploaders = _plan_benzenes(page, server, inputs)
    # after validating: another protocol (a file) and the run name
    uploaders.filter(has_text="protocol file").locator('input[type="file"]').set_input_files(str(longer_protocol))
    page.get_by_text("tiny-longer (from longer.json)").first.wait_for()
    page.get_by_role("textbox", name="Run name").fill("on-screen")
    page.get_by_role("textbox", name="Run name").press("Enter")
    page.get_by_text("Launches on-screen with protocol tiny-longer").first.wait_for()
    page.get_by_role("button", name="Launch run").click()
    page.get_by_text("run on-screen started with protocol tiny-longer").first.wait_for()
    run_dir = runs_with_finished_run / "on-screen"
    log = run_dir / "fep_run.log"
    _wait(lambda: (run_dir / "run.json").is_file(), "run.json", log=log)
    assert json.loads((run_dir / "run.json").read_text())["protocol"]["name"] == "tiny-longer"
    launch = json.loads((run_dir / "app_launch.json").read_text())
    first_pid = launch["pid"]

    fractions: list[float] = []  # read from the files, as any page would
    shown: list[float] = []  # what a freshly opened Progress page shows (no memory of earlier values)

    def sample() -> dict:
        info = data.run_status(run_dir)
        fractions.append(info["progress"])
        page.goto(f"{server}/progress?run=on-screen")
        page.get_by_role("heading", name="Progress").wait_for()
        shown.append(_overall(page))
        return info

    def sampling_mid_way() -> bool:
        info = sample()
        legs = [leg for e in info["edges"] for leg in e["legs"]]
        return any(leg.get("phase") == "production" and 3 <= (leg.get("done") or 0) <= 16 for leg in legs)

    _wait(sampling_mid_way, "a leg sampling mid-way", log=log)
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("on-screen stopped").first.wait_for(timeout=180_000)
    assert _proc_state(first_pid) is None, f"fep run {first_pid} is {_proc_state(first_pid)} after Stop"
    assert _zombies_under(server_pgid) == []
    summary = data.summarize_run(run_dir)
    assert summary.state == "interrupted", summary
    sample()

    page.get_by_role("button", name="Resume").click()
    page.get_by_text("on-screen resumed").first.wait_for()
    watcher = page.context.new_page()  # stays open on the Progress page until the run ends
    watcher.goto(f"{server}/progress?run=on-screen")
    watcher.get_by_role("heading", name="Progress").wait_for()
    second_pid = json.loads((run_dir / "app_launch.json").read_text())["pid"]
    assert second_pid != first_pid
    result = run_dir / "edges" / "benzene~toluene" / "edge_result.json"
    _wait(lambda: sample() and result.is_file(), "the resumed run's edge result", log=log)
    assert json.loads(result.read_text())["status"] == "done"
    _wait(lambda: _proc_state(second_pid) is None, "the resumed fep run to end and be reaped", 120, log)
    assert _zombies_under(server_pgid) == []
    sample()
    assert fractions[-1] == 1.0 and shown[-1] == 1.0
    assert all(b >= a for a, b in itertools.pairwise(fractions)), fractions
    assert all(b >= a for a, b in itertools.pairwise(shown)), shown
    assert len(set(fractions)) >= 4  # it was sampled while it moved, not only at the ends
    # the page that was open when the run ended says so in its picker (it refreshed itself)
    picked = watcher.locator('[data-testid="stSelectbox"] input').first  # the picker shows its choice in an input
    _wait(lambda: re.match(r"on-screen\s+\(done", picked.input_value()), "the open page's picker to say done", 60)
    stop = watcher.get_by_role("button", name="Stop")
    _wait(lambda: stop.is_disabled(), "the open page's Stop button to be disabled once the process has ended", 60)
    _shot(watcher, tmp_path, "progress.png")


def test_bad_residue_is_reported_on_the_page(server, page, inputs, bench, tmp_path):
    """Item 3: a PDB with a residue the force field does not know is reported, naming the residue and the user's
    file, before anything is planned."""
    lines = []
    renamed = False
    for line in (bench / "tyk2" / "protein.pdb").read_text().splitlines():
        if line.startswith("ATOM") and line[22:26].strip() == "950" and line[21] == "A":
            line = line[:17] + "XYZ" + line[20:]
            renamed = True
        lines.append(line)
    assert renamed
    bad = tmp_path / "tyk2_bad.pdb"
    bad.write_text("\n".join(lines) + "\n")
    page.goto(f"{server}/new")
    page.get_by_role("heading", name="New run").wait_for()
    uploaders = page.locator('[data-testid="stFileUploader"]')
    uploaders.filter(has_text="Ligands").locator('input[type="file"]').set_input_files(str(inputs["ligands"]))
    uploaders.filter(has_text="Protein PDB").locator('input[type="file"]').set_input_files(str(bad))
    page.get_by_text("tyk2_bad.pdb").first.wait_for()
    page.get_by_role("button", name="Validate and plan").click()
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="XYZ")
    alert.first.wait_for(timeout=180_000)
    text = alert.first.inner_text()
    assert "tyk2_bad.pdb" in text and "950" in text and "template" in text, text
    assert ".upload-" not in text and "protein.pdb" not in text, text
    assert page.get_by_role("heading", name="Planned network").count() == 0


def test_missing_or_unfinished_runs_are_said_so_and_runs_has_a_url(server, page, runs_with_finished_run):
    """Item 5: ?run= naming no run, or a run without results, says so and shows no other run; /runs opens the
    Runs page."""
    empty = runs_with_finished_run / "no-results-yet"
    empty.mkdir(exist_ok=True)
    for name in ("run.json", "network.json"):
        shutil.copy(runs_with_finished_run / "tiny" / name, empty / name)
    page.goto(f"{server}/results?run=nonexistent")
    page.get_by_text("There is no run called nonexistent").first.wait_for()
    assert page.get_by_role("heading", name="Ranked ligands").count() == 0
    page.goto(f"{server}/results?run=no-results-yet")
    page.get_by_text("has no results yet").first.wait_for()
    assert page.get_by_role("heading", name="Ranked ligands").count() == 0
    page.goto(f"{server}/runs")
    page.get_by_role("heading", name="Runs").first.wait_for()
    assert page.get_by_text("Page not found").count() == 0
    shutil.rmtree(empty)


def _painted_pixels(png: bytes) -> int:
    """Pixels of a screenshot that differ from its most common colour (the background)."""
    import io

    import numpy as np
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(image, axis=0, return_counts=True)
    background = colours[np.argmax(counts)]
    return int(np.sum(np.abs(image.astype(int) - background).sum(axis=1) > 60))


def _open_3d(page, server: str, view: str):
    page.goto(f"{server}/results?run=tiny")
    page.get_by_role("heading", name="Ranked ligands").wait_for()
    page.get_by_role("tab", name="3D").click()
    page.get_by_text(view).first.click()
    frame = page.frame_locator('iframe[title="st.iframe"], iframe').last
    canvas = frame.locator("canvas").first
    canvas.wait_for(timeout=120_000)
    return canvas


def _plan_benzenes(page, server: str, inputs):
    """Open New run, upload the benzene CSV in hydration mode, validate and plan; returns the upload boxes."""
    page.goto(f"{server}/new")
    page.get_by_role("heading", name="New run").wait_for()
    page.get_by_text("hydration", exact=True).click()
    uploaders = page.locator('[data-testid="stFileUploader"]')
    uploaders.filter(has_text="Ligands").locator('input[type="file"]').set_input_files(str(inputs["ligands"]))
    page.get_by_text("benzenes.csv").first.wait_for()
    page.get_by_role("button", name="Validate and plan").click()
    page.get_by_role("heading", name="Planned network").wait_for(timeout=180_000)
    return uploaders


def _painted(canvas) -> int:
    """Painted pixels of the canvas, 0 while its frame is being replaced (a Streamlit rerun reloads the
    component's iframe: the locator then briefly points at a frame that no longer exists)."""
    from playwright.sync_api import Error

    try:
        return _painted_pixels(canvas.screenshot(timeout=30_000))
    except Error:
        return 0


def test_3d_viewer_renders_with_the_network_blocked(server, browser, tmp_path):
    """The 3D viewer's JavaScript comes from an installed package: with every request to a host other than this
    machine aborted, the edge overlay and a leg's last snapshot are drawn (a canvas with molecules on it)."""
    from urllib.parse import urlparse

    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    blocked: list[str] = []

    def only_loopback(route):
        url = route.request.url
        host = urlparse(url).hostname
        if url.startswith(("blob:", "data:", "about:")) or host in ("localhost", "127.0.0.1", "::1"):
            return route.continue_()
        blocked.append(url)
        return route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        for view, name in (("edge overlay", "viewer_overlay.png"), ("last snapshot", "viewer_snapshot.png")):
            canvas = _open_3d(page, server, view)
            _wait(lambda canvas=canvas: _painted(canvas) > 2000, f"the {view} to be drawn", 180)
            _shot(page, tmp_path, name)
        assert not [u for u in blocked if "jsdelivr" in u or "unpkg" in u or u.endswith(".js")], blocked
    finally:
        context.close()


@pytest.mark.slow  # makes docs/screenshots (MLFEP_SCREENSHOT_DIR); the pages are covered by the tests above
def test_screenshots_of_every_page(server, browser, inputs, tmp_path):
    """A full-page screenshot of each page (kept in $MLFEP_SCREENSHOT_DIR when set: docs/screenshots/)."""
    context = browser.new_context(viewport={"width": 1400, "height": 3000})  # the pages scroll inside the app
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.goto(f"{server}/")
    page.get_by_role("heading", name="Runs").first.wait_for()
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
    assert _shot(page, tmp_path, "runs.png").stat().st_size > 10_000
    _plan_benzenes(page, server, inputs)
    page.get_by_text("CPU core-hours").first.wait_for()
    assert _shot(page, tmp_path, "new_run.png").stat().st_size > 10_000
    page.goto(f"{server}/progress?run=tiny")
    page.get_by_role("heading", name="Progress").wait_for()
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
    assert _shot(page, tmp_path, "progress_done.png").stat().st_size > 10_000
    page.goto(f"{server}/results?run=tiny")
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
    page.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg').first.wait_for()
    assert _shot(page, tmp_path, "results.png").stat().st_size > 20_000
    page.get_by_role("tab", name="Edges").click()
    page.locator('[data-testid="stVegaLiteChart"]:visible').first.wait_for()
    assert _shot(page, tmp_path, "results_edges.png").stat().st_size > 20_000
    page.get_by_role("tab", name="Network").click()
    page.locator('[data-testid="stVegaLiteChart"]:visible').first.wait_for()
    assert _shot(page, tmp_path, "results_network.png").stat().st_size > 20_000
    context.close()
