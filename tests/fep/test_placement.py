"""λ windows placed from overlap (protocol lambda_placement): a first pass, windows added where neighbouring
overlap is low, production on the refined ladder, all of it recorded in the leg result and reused on resume."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("openmm")

from tests.tiny import TINY_PROTOCOL

SERIES = "name,smiles\nbenzene,c1ccccc1\ntoluene,Cc1ccccc1\n"


def test_a_leg_adds_windows_where_the_first_pass_overlap_is_low(tmp_path, charge_cache):
    from analysis.results import LegResult
    from fep.execution.runner import PLACEMENT_FILE, run_leg
    from fep.protocol import load_protocol
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands
    from ligand_prep.mapping import MappingSettings, MCSMapper

    base = load_protocol("smoke")
    protocol = base.model_copy(
        update={
            "n_windows": 3,
            # the tiny protocol's short equilibration and iterations: the logic is tested, not the numbers
            "sampler": base.sampler.model_copy(update={**TINY_PROTOCOL["sampler"], "n_iterations": 12}),
            # no neighbour overlap reaches 0.5 (a row of the overlap matrix sums to 1): every gap is refined
            "lambda_placement": base.lambda_placement.model_copy(
                update={"enabled": True, "target_overlap": 0.5, "first_pass_iterations": 10, "max_added_windows": 2}
            ),
        }
    )
    csv = tmp_path / "series.csv"
    csv.write_text(SERIES)
    ligands = {lig.name: lig for lig in read_ligands(csv, align=False)}
    prepared = {n: assign_charges(lig, method="gasteiger", cache_dir=charge_cache) for n, lig in ligands.items()}
    mapping = MCSMapper(MappingSettings(use_poses=False)).map(ligands["benzene"], ligands["toluene"])
    leg_dir = tmp_path / "leg"
    result = run_leg(prepared["benzene"], prepared["toluene"], mapping, "vacuum", protocol, leg_dir)
    record = json.loads((leg_dir / PLACEMENT_FILE).read_text())
    assert record["first_pass_iterations"] == 10 and len(record["first_pass_neighbour_overlap"]) == 2
    assert all(o < 0.5 for o in record["first_pass_neighbour_overlap"])
    added = sum(g["added"] for g in record["refined_gaps"])
    assert added == 2 and record["n_windows"] == 5  # each gap wants at least one; the budget is 2
    assert result.n_states == 5 and math.isfinite(result.dg_kcal_mol)
    assert result.lambda_placement is not None and result.lambda_placement["refined_gaps"] == record["refined_gaps"]
    states = json.loads((leg_dir / "sampler" / "sampler.json").read_text())["states"]
    assert states == record["windows"] and states[0] == protocol.windows()[0] and states[-1] == protocol.windows()[-1]
    assert LegResult.from_json_file(leg_dir / "leg_result.json").lambda_placement == result.lambda_placement
    # run again (a resume): the recorded ladder is reused, the finished leg is not redone
    mtime = (leg_dir / PLACEMENT_FILE).stat().st_mtime
    again = run_leg(prepared["benzene"], prepared["toluene"], mapping, "vacuum", protocol, leg_dir)
    assert again == result and (leg_dir / PLACEMENT_FILE).stat().st_mtime == mtime
