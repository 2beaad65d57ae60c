#!/usr/bin/env bash
# `make demo`: a real example end to end, from example data only (no ../shared needed).
#  1. plan a hydration network for three small molecules from SMILES (poses generated, atoms mapped)
#  2. run one edge (benzene -> toluene, solvent + vacuum legs) with the smoke protocol
#  3. write the report (results.csv, edges.csv, results.json, plots, report.html)
#  4. plan the tyk2 binding network from its SDF and protein, and check a hybrid topology's end states
set -euo pipefail
cd "$(dirname "$0")/.."
FEP=${FEP:-.venv/bin/fep}
OUT=${DEMO_DIR:-demo_run}
rm -rf "$OUT"
mkdir -p "$OUT"

NNP=none
if $FEP models --json 2>/dev/null | grep -q '"ani2x_available": true'; then NNP=ani2x; fi

echo "== 1. fep plan (hydration, from SMILES)"
$FEP plan examples/benzenes/ligands.csv --mode hydration -o "$OUT/benzenes_network.json" --images "$OUT/images"

echo "== 2. fep run (benzene -> toluene, smoke protocol, NNP correction: $NNP)"
$FEP run --edge benzene,toluene --ligands examples/benzenes/ligands.csv --mode hydration --protocol smoke \
    --nnp "$NNP" -o "$OUT/run"
$FEP status "$OUT/run"

echo "== 3. fep report"
$FEP report "$OUT/run" -o "$OUT/report"

echo "== 4. fep plan (tyk2 binding network) and fep check (end-state energies of a hybrid, solvent leg)"
$FEP plan examples/tyk2/ligands.sdf --protein examples/tyk2/protein.pdb -o "$OUT/tyk2_network.json"
$FEP check --ligands examples/tyk2/ligands.sdf --edge lig_ejm_31,lig_ejm_42 --leg solvent

echo
echo "Demo finished. Open $OUT/report/report.html in a browser; mapping pictures are in $OUT/images."
