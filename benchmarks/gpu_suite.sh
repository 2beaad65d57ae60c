#!/usr/bin/env bash
# The GPU suite, for a short loan of one CUDA GPU (under 8 minutes on an H100-class card):
#
#   bash benchmarks/gpu_suite.sh [OUT]          (OUT: benchmarks/results/gpu)
#
# 1. installs OpenMM's CUDA platform into .venv (openmm-cuda-<driver's CUDA major>, the version of the installed
#    openmm) and the [bench] extra (openmmtools); from a wheel folder instead of the package index when MLFEP_WHEELS
#    names one (machines without network), and builds .venv first (`make install`) if there is none;
# 2. checks that OpenMM opens a CUDA context, and stops with one clear error if it does not;
# 3. runs `benchmarks/speed.py --gpu-suite --platform CUDA`: hybrid vs plain MD (ns/day of the benzene and tyk2
#    solvent and complex legs), our HREX vs openmmtools' ReplicaExchangeSampler on the same system, the NNP cost,
#    and one short tyk2 edge (smoke protocol, MM only), each part under its own time limit; JSON and markdown go to
#    OUT, and `python benchmarks/speed.py --collect` folds OUT/speed.json into benchmarks/results/speed.md.
#
# MLFEP_GPU_SUITE_PLATFORM=CPU checks the suite's pipeline on a machine without a GPU (short parts, the edge only
# planned); its numbers are not GPU numbers and it writes to OUT as well, so point OUT somewhere else.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results/gpu}
PLATFORM=${MLFEP_GPU_SUITE_PLATFORM:-CUDA}
PY=.venv/bin/python
[ -x "$PY" ] || make install
export TORCHANI_DATA_DIR=${TORCHANI_DATA_DIR:-$(cd .. && pwd)/shared/models/torchani}
source=()
[ -n "${MLFEP_WHEELS:-}" ] && source=(--no-index --find-links "$MLFEP_WHEELS")
# the [bench] extra: openmmtools, for the sampler comparison
"$PY" -m pip install -q --disable-pip-version-check "${source[@]}" -e ".[dev,bench]"

if [ "$PLATFORM" = "CUDA" ]; then
    version=$("$PY" -c 'import openmm; print(openmm.__version__)')
    major=${MLFEP_CUDA_MAJOR:-$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9]*\).*/\1/p' | head -n 1)}
    if [ -z "$major" ]; then
        echo "error: nvidia-smi reports no CUDA driver on this machine; run the suite on a machine with an NVIDIA" \
            "GPU, or set MLFEP_CUDA_MAJOR (12 or 13) if nvidia-smi is not on PATH" >&2
        exit 1
    fi
    [ "$major" -gt 13 ] && major=13 # the newest CUDA platform wheel; drivers run older CUDA builds
    "$PY" -m pip install -q --disable-pip-version-check "${source[@]}" "openmm-cuda-${major}==${version}"
    if ! "$PY" - <<'EOF'
import openmm

system = openmm.System()
system.addParticle(1.0)
context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CUDA"))
print("OpenMM CUDA platform:", context.getPlatform().getPropertyValue(context, "DeviceName"))
EOF
    then
        echo "error: OpenMM's CUDA platform did not open a context (above: why); check that the driver's CUDA" \
            "version ($major) matches openmm-cuda-$major" >&2
        exit 1
    fi
    exec "$PY" benchmarks/speed.py --gpu-suite --platform CUDA --out "$OUT"
fi
exec "$PY" benchmarks/speed.py --gpu-suite --quick --platform "$PLATFORM" --out "$OUT"
