"""``fep app``: start the Streamlit dashboard on a runs folder (or a results store)."""

from __future__ import annotations

from pathlib import Path

import typer

from fep.cli._app import app, emit_json


def streamlit_command(port: int, address: str = "localhost") -> list[str]:
    """The ``streamlit run`` command line for app/main.py on ``port``."""
    import importlib.util
    import sys

    from mlfep_core import InputError

    spec = importlib.util.find_spec("app.main")  # the package may be a namespace in test runs: ask for the file
    if spec is None or spec.origin is None:
        raise InputError("the dashboard (app/main.py) is not installed with this mlfep; reinstall mlfep")
    main = Path(spec.origin).resolve()
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(main),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--server.maxUploadSize",
        "50",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]


@app.command("app")
def app_command(
    store: str | None = typer.Option(None, "--store", help="Results store URL (default: the runs folder)."),
    runs: Path = typer.Option(Path("runs"), "--runs", help="Folder holding one run directory per run."),
    port: int = typer.Option(8501, "--port", min=1, max=65535, help="Port of the dashboard."),
    address: str = typer.Option("localhost", "--address", help="Address to listen on (0.0.0.0 for everyone)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would start, then stop."),
    json_out: bool = typer.Option(False, "--json", help="Print the URL, runs folder and command as JSON first."),
) -> None:
    """Open the dashboard: runs list, new run, progress and results pages (Ctrl-C stops it; runs go on)."""
    import os

    from mlfep_core import InputError

    runs = runs.expanduser().resolve()
    if runs.exists() and not runs.is_dir():
        raise InputError(f"--runs {runs}: not a folder; give the folder that holds (or will hold) the run directories")
    if store:
        from app.data import open_source

        open_source(runs=runs, store=store)  # a clear error when the store cannot be used
    command = streamlit_command(port, address)
    url = f"http://{'localhost' if address in ('0.0.0.0', '::') else address}:{port}"
    info = {"url": url, "runs": str(runs), "store": store, "command": command}
    if json_out:
        emit_json(info)
    else:
        typer.echo(
            f"mlfep dashboard on {url} (runs folder {runs}); Ctrl-C stops it, launched runs keep going", err=True
        )
    if address not in ("localhost", "127.0.0.1", "::1"):
        typer.echo(
            f"warning: listening on {address}, not only on this machine: anyone who can reach port {port} can "
            "upload ligands, start runs and read results (there is no login)",
            err=True,
        )
    if dry_run:
        return
    runs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["MLFEP_RUNS_DIR"] = str(runs)
    if store:
        env["MLFEP_STORE"] = store
    code = _serve(command, env)
    if code:
        raise typer.Exit(code)


def _serve(command: list[str], env: dict[str, str]) -> int:
    """Run the Streamlit server until it exits, or until this process gets Ctrl-C or SIGTERM: then stop it
    (SIGTERM, SIGKILL after 5 s) so that no server is left running on its own."""
    import signal
    import subprocess

    proc = subprocess.Popen(command, env=env)

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
