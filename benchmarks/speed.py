"""The speed suite in one command: hybrid-topology MD ratio, sampler efficiency, analysis cost, NNP cost.

    python benchmarks/speed.py [--platform CPU|CUDA] [--quick] [--out benchmarks/results]
    python benchmarks/speed.py --gpu-suite --platform CUDA --out benchmarks/results/gpu   (benchmarks/gpu_suite.sh)
    python benchmarks/speed.py --collect [--out benchmarks/results]

Runs each benchmark script of this folder (each also usable alone), then gathers their JSON into ``speed.json``
and their markdown tables into ``speed.md``. CPU always; pass ``--platform CUDA`` on a GPU machine (the scripts
that take a platform use it). ``--quick`` shortens every part (to check the pipeline, not to report).

``--gpu-suite`` sizes the parts for a short loan of one GPU (under 8 minutes on an H100-class card, every part
under its own time limit so one slow part cannot eat the others): hybrid vs plain MD on the benzene and tyk2
solvent and complex legs (ns/day of each), our HREX vs openmmtools' ReplicaExchangeSampler on the same system,
the NNP cost (ANI-2x on CUDA when torch sees a GPU), and one short tyk2 edge (``rbfe.py``, smoke protocol, MM
only). It also records the GPU, the driver and the versions. ``benchmarks/gpu_suite.sh`` installs the CUDA
plugin and runs it.

``--collect`` runs nothing: it gathers the parts' last committed outputs, and folds in the GPU suite's
``<out>/gpu/speed.json`` when there is one (or says it was not run).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GPU_SUITE_EDGE = "lig_ejm_31~lig_ejm_42"  # the tyk2 edge of hybrid_speed's cases
GPU_SUITE_PART_LIMIT_S = {"hybrid_speed": 110, "sampler_speed": 100, "nnp_speed": 50, "rbfe": 180}  # 440 s


def _torch_sees_gpu() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _machine(platform: str) -> dict:
    """The GPU (nvidia-smi), the OpenMM platforms and versions: what the suite's numbers were measured on."""
    info: dict = {"python": sys.version.split()[0], "platform_asked": platform}
    try:
        import openmm

        info["openmm"] = openmm.__version__
        info["openmm_platforms"] = [
            openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())
        ]
    except ImportError:
        info["openmm"] = None
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda"] = _torch_sees_gpu()
    except ImportError:
        info["torch"] = None
    query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
    try:
        done = subprocess.run(query, capture_output=True, text=True, timeout=30, check=False)
        info["gpus"] = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    except (OSError, subprocess.TimeoutExpired):
        info["gpus"] = []
    return info


def parts(platform: str, quick: bool, gpu_suite: bool = False, out: Path | None = None) -> list[tuple[str, list[str]]]:
    """(name, arguments) of every part; each writes <name>.json and <name>.md into --out."""
    if gpu_suite:
        edge_platform = "CPU" if quick else platform  # --quick: the suite's pipeline checked on a CPU machine
        device = "cuda" if platform == "CUDA" and _torch_sees_gpu() else "cpu"
        fep_args = f"--platform {edge_platform} --workers 1"
        runs = out / "runs" if out is not None else HERE.parent / "runs" / "gpu_suite"
        edge = ["--targets", "tyk2", "--edges", GPU_SUITE_EDGE, "--protocol", "smoke", "--nnp", "none"]
        edge += ["--run-root", str(runs), "--fep-args", fep_args]
        if quick:
            return [
                ("hybrid_speed", ["--platform", platform, "--steps", "40", "--complex-steps", "4", "--rounds", "1"]),
                ("sampler_speed", ["--platform", platform, "--smoke", "--repeats", "1", "--ps-per-replica", "0.4"]),
                ("nnp_speed", ["--platform", platform, "--device", device, "--frames", "8", "--ml-steps", "5"]),
                ("rbfe", [*edge, "--dry-run"]),
            ]
        return [
            ("hybrid_speed", ["--platform", platform, "--steps", "20000", "--complex-steps", "5000", "--rounds", "4"]),
            ("sampler_speed", ["--platform", platform, "--repeats", "1", "--ps-per-replica", "20"]),
            ("nnp_speed", ["--platform", platform, "--device", device, "--frames", "200", "--ml-steps", "50"]),
            ("rbfe", edge),
        ]
    hybrid = ["--platform", platform] + (["--steps", "200", "--complex-steps", "20", "--rounds", "2"] if quick else [])
    sampler = ["--smoke"] if quick else []
    analysis = ["--repeats", "1", "--n-bootstrap", "0"] if quick else []
    nnp = ["--frames", "8", "--ml-steps", "5"] if quick else []
    return [
        ("hybrid_speed", hybrid),
        ("sampler_speed", sampler),
        ("analysis_cost", analysis),
        ("nnp_speed", nnp),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--platform", default="CPU")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--only", default=None, help="comma-separated subset of the parts")
    parser.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: gather the parts' existing <name>.json/.md in --out (each keeps its own command and date)",
    )
    parser.add_argument(
        "--gpu-suite",
        action="store_true",
        help="the parts sized for a short GPU loan, each under its own time limit, plus one short tyk2 edge",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only.split(",")) if args.only else None
    summary: dict = {"command": "python benchmarks/speed.py " + " ".join(argv or sys.argv[1:]), "parts": {}}
    title = "# mlfep GPU suite" if args.gpu_suite else "# mlfep speed suite"
    sections = [title, "", f"Command: `{summary['command']}`", ""]
    if args.gpu_suite:
        summary["machine"] = _machine(args.platform)
        summary["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        m = summary["machine"]
        sections += [
            f"{summary['date']}; GPU: {', '.join(m['gpus']) or 'none seen by nvidia-smi'}; OpenMM {m['openmm']} "
            f"(platforms {', '.join(m.get('openmm_platforms', []))}); torch {m['torch']} "
            f"(CUDA {'yes' if m.get('torch_cuda') else 'no'}).",
            "",
        ]
    suite_start = time.perf_counter()
    for name, extra in parts(args.platform, args.quick, args.gpu_suite, args.out):
        if wanted and name not in wanted:
            continue
        # analysis_cost takes a file stem, the others a folder
        out_arg = args.out / name if name == "analysis_cost" else args.out
        cmd = [sys.executable, str(HERE / f"{name}.py"), "--out", str(out_arg), *extra]
        json_path = args.out / f"{name}.json"
        md_path = args.out / f"{name}.md"
        if args.collect:
            returncode = 0 if json_path.exists() and md_path.exists() else 1
            entry: dict = {"returncode": returncode, "collected": True}
            heading = f"## {name} (collected from {md_path.name})" if returncode == 0 else f"## {name} (missing)"
        else:
            print("+", " ".join(cmd), flush=True)
            limit = GPU_SUITE_PART_LIMIT_S[name] if args.gpu_suite and not args.quick else None
            start = time.perf_counter()
            returncode = _run_part(cmd, limit)
            if returncode == 124:
                print(f"{name}: stopped at its {limit} s limit", flush=True)
            wall = time.perf_counter() - start
            entry = {"returncode": returncode, "wall_s": round(wall, 1), "args": extra, "limit_s": limit}
            status = f"stopped at its {limit} s limit" if returncode == 124 and limit else f"exit {returncode}"
            heading = f"## {name} ({status}, {wall:.0f} s)"
        if returncode in (0, 124) and json_path.exists():  # 124: what a part stopped at its limit wrote
            entry["result"] = json.loads(json_path.read_text())
        summary["parts"][name] = entry
        sections += [heading, ""]
        if returncode in (0, 124) and md_path.exists():
            body = md_path.read_text().splitlines()
            sections += [line.replace("# ", "### ", 1) if line.startswith("# ") else line for line in body]
        sections.append("")
    if args.gpu_suite and not args.collect:
        summary["wall_s"] = round(time.perf_counter() - suite_start, 1)
        sections.append(f"Suite wall time: {summary['wall_s']:.0f} s.")
    if args.collect and not args.gpu_suite:
        sections += gpu_section(args.out / "gpu")
    from mlfep_core import atomic_write_text

    atomic_write_text(args.out / "speed.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(args.out / "speed.md", "\n".join(sections) + "\n")
    print(f"wrote {args.out / 'speed.json'} and {args.out / 'speed.md'}")
    return 0 if all(p["returncode"] == 0 for p in summary["parts"].values()) else 1


def _run_part(cmd: list[str], limit: float | None) -> int:
    """Run one part; at ``limit`` seconds stop it with everything it started (rbfe.py's fep run and its workers)
    and return 124, as timeout(1) does. What the part wrote before that stays."""
    process = subprocess.Popen(cmd, start_new_session=True)
    try:
        return process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        return 124


def gpu_section(folder: Path) -> list[str]:
    """The GPU suite's results (``benchmarks/gpu_suite.sh`` writes them into ``folder``), or that it was not run."""
    summary_path = folder / "speed.json"
    if not summary_path.exists():
        return [
            "## GPU suite (`benchmarks/gpu_suite.sh`)",
            "",
            "Not run: no GPU machine has been lent to a session yet. Every number above is from the CPU platform.",
            "",
        ]
    suite = json.loads(summary_path.read_text())
    m = suite.get("machine", {})
    lines = [
        f"## GPU suite (`benchmarks/gpu_suite.sh`, {suite.get('date', '?')}, {', '.join(m.get('gpus', [])) or '?'})",
        "",
        f"Full tables: `benchmarks/results/{folder.name}/speed.md`. Suite wall time "
        f"{suite.get('wall_s', float('nan')):.0f} s.",
        "",
        "| part | exit | wall s |",
        "| --- | ---: | ---: |",
    ]
    for name, entry in suite.get("parts", {}).items():
        lines.append(f"| {name} | {entry.get('returncode')} | {entry.get('wall_s', float('nan')):.0f} |")
    hybrid = suite.get("parts", {}).get("hybrid_speed", {}).get("result")
    if hybrid:
        lines += ["", "| case | plain MD ns/day | hybrid ns/day |", "| --- | ---: | ---: |"]
        for case in hybrid.get("cases", []):
            lines.append(f"| {case.get('case')} | {_nsday(case, 'plain')} | {_nsday(case, 'hybrid')} |")
    return [*lines, ""]


def _nsday(case: dict, which: str) -> str:
    value = case.get(f"{which}_ns_per_day")
    return f"{value:.1f}" if isinstance(value, int | float) else "?"


if __name__ == "__main__":
    sys.exit(main())
