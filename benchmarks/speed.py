"""The speed suite in one command: hybrid-topology MD ratio, sampler efficiency, analysis cost, NNP cost.

    python benchmarks/speed.py [--platform CPU|CUDA] [--quick] [--out benchmarks/results]

Runs each benchmark script of this folder (each also usable alone), then gathers their JSON into ``speed.json``
and their markdown tables into ``speed.md`` (``--collect`` only gathers the parts' last committed outputs). CPU always; pass ``--platform CUDA`` on a GPU machine (the
scripts that take a platform use it). ``--quick`` shortens every part (to check the pipeline, not to report).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parts(platform: str, quick: bool) -> list[tuple[str, list[str]]]:
    """(name, arguments) of every part; each writes <name>.json and <name>.md into --out."""
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
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only.split(",")) if args.only else None
    summary: dict = {"command": "python benchmarks/speed.py " + " ".join(argv or sys.argv[1:]), "parts": {}}
    sections = ["# mlfep speed suite", "", f"Command: `{summary['command']}`", ""]
    for name, extra in parts(args.platform, args.quick):
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
            start = time.perf_counter()
            returncode = subprocess.run(cmd, check=False).returncode
            wall = time.perf_counter() - start
            entry = {"returncode": returncode, "wall_s": round(wall, 1), "args": extra}
            heading = f"## {name} (exit {returncode}, {wall:.0f} s)"
        if returncode == 0 and json_path.exists():
            entry["result"] = json.loads(json_path.read_text())
        summary["parts"][name] = entry
        sections += [heading, ""]
        if returncode == 0 and md_path.exists():
            body = md_path.read_text().splitlines()
            sections += [line.replace("# ", "### ", 1) if line.startswith("# ") else line for line in body]
        sections.append("")
    (args.out / "speed.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "speed.md").write_text("\n".join(sections) + "\n")
    print(f"wrote {args.out / 'speed.json'} and {args.out / 'speed.md'}")
    return 0 if all(p["returncode"] == 0 for p in summary["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
