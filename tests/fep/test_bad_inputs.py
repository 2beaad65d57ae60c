"""Bad input, table-driven: every case exits 2 with one line on stderr that names the file, row, ligand, residue,
option or setting, and never a traceback. Nothing here simulates: each case must fail before any real work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fep.cli import main

REPO = Path(__file__).resolve().parents[2]
GOOD = "name,smiles\nbenzene,c1ccccc1\ntoluene,Cc1ccccc1\n"

FILES: dict[str, str | bytes] = {
    "good.csv": GOOD,
    "empty.csv": "",
    "header_only.csv": "name,smiles\n",
    "no_smiles_column.csv": "name,structure\nbenzene,c1ccccc1\n",
    "bad_smiles.csv": "name,smiles\nbenzene,c1ccccc1\nbroken,C1CC(\n",
    "duplicate.csv": "name,smiles\nbenzene,c1ccccc1\nbenzene,Cc1ccccc1\n",
    "traversal.csv": "name,smiles\n../../evil,c1ccccc1\ntoluene,Cc1ccccc1\n",
    "spaces.csv": "name,smiles\nbenzoic acid,OC(=O)c1ccccc1\ntoluene,Cc1ccccc1\n",
    "hidden.csv": "name,smiles\n.hidden,c1ccccc1\ntoluene,Cc1ccccc1\n",
    "metal.csv": "name,smiles\nferrocene,[Fe]\ntoluene,Cc1ccccc1\n",
    "xenon.csv": "name,smiles\nxenon,[Xe]\ntoluene,Cc1ccccc1\n",
    "radical.csv": "name,smiles\nmethyl,[CH3]\ntoluene,Cc1ccccc1\n",
    "three_bad.csv": "name,smiles\na,C1CC(\nb,c1ccccc1\nc,[Fe]\nd,XX\n",
    "salt.csv": "name,smiles\nacetate,CC(=O)O.[Na+]\ntoluene,Cc1ccccc1\n",
    "mixture.csv": "name,smiles\nmix,c1ccccc1.CCO\ntoluene,Cc1ccccc1\n",
    "empty_name.csv": "name,smiles\n,c1ccccc1\ntoluene,Cc1ccccc1\n",
    "binary.csv": b"\x00\x01\x02\xff\xfe binary",
    "ligands.xyz": "3\nwater\nO 0 0 0\n",
    "garbage.sdf": "this is not an SDF file\nat all\n",
    "one.csv": "name,smiles\nbenzene,c1ccccc1\n",
    "edges_unknown.csv": "ligand_a,ligand_b\nbenzene,xylene\n",
    "edges_bad_header.csv": "from,to\nbenzene,toluene\n",
    "binary.pdb": b"\x00\x00\x00PDB?\xff\xfe",
    "protein.cif": "data_1ABC\nloop_\n_atom_site.group_PDB\nATOM\n",
    "garbage.pdb": "HELLO WORLD\nthis is no protein\n",
    "not_a_mapping.json": "[1, 2, 3]",
    "broken.json": '{"base": "smoke", ',
    "unknown_key.json": '{"base": "smoke", "n_windowz": 3}',
    "bad_base.json": '{"base": "turbo"}',
    "bare_timestep.json": '{"base": "smoke", "sampler": {"timestep": 4}}',
    "negative_timestep.json": '{"base": "smoke", "sampler": {"timestep": "-4 fs"}}',
    "huge_timestep.json": '{"base": "smoke", "sampler": {"timestep": "10 fs"}}',
    "negative_temperature.json": '{"base": "smoke", "sampler": {"temperature": "-10 K"}}',
    "zero_pressure.json": '{"base": "smoke", "sampler": {"pressure": "0 bar"}}',
    "zero_iterations.json": '{"base": "smoke", "sampler": {"n_iterations": 0}}',
    "one_window.json": '{"base": "smoke", "n_windows": 1}',
    "light_hydrogens.json": '{"base": "smoke", "system": {"hydrogen_mass": "1.008 dalton"}}',
    "no_constraints.json": '{"base": "smoke", "system": {"constraints": "none"}}',
    "tiny_cutoff.json": '{"base": "smoke", "system": {"nonbonded_cutoff": "0.3 nm"}}',
    "wrong_unit.json": '{"base": "smoke", "sampler": {"temperature": "300 nm"}}',
    "bad_yaml.yaml": "base: smoke\nsampler: [unclosed\n",
    "unknown_charges.json": '{"base": "smoke", "charge_method": "hf"}',
    "repeats_zero.json": '{"base": "smoke", "repeats": 0}',
}

# (command line with {name} placeholders for the files above and {tmp} for the test's folder, expected text)
CASES = [
    # ---------------------------------------------------------------- fep prep
    ("prep {missing.csv} -o {tmp}/o.sdf", "missing.csv"),
    ("prep {empty.csv} -o {tmp}/o.sdf", "empty.csv"),
    ("prep {header_only.csv} -o {tmp}/o.sdf", "header_only.csv"),
    ("prep {no_smiles_column.csv} -o {tmp}/o.sdf", "smiles"),
    ("prep {bad_smiles.csv} -o {tmp}/o.sdf", "row 3"),
    ("prep {duplicate.csv} -o {tmp}/o.sdf", "duplicate ligand name 'benzene'"),
    ("prep {traversal.csv} -o {tmp}/o.sdf", "row 2: '../../evil' is not a valid name"),
    ("prep {spaces.csv} -o {tmp}/o.sdf", "'benzoic acid' is not a valid name"),
    ("prep {hidden.csv} -o {tmp}/o.sdf", "'.hidden' is not a valid name"),
    ("prep {metal.csv} -o {tmp}/o.sdf", "ferrocene"),
    ("prep {xenon.csv} -o {tmp}/o.sdf", "xenon"),
    ("prep {radical.csv} -o {tmp}/o.sdf", "methyl"),
    ("prep {three_bad.csv} -o {tmp}/o.sdf", "3 ligands are invalid: three_bad.csv row 2 (a)"),
    ("prep {salt.csv} -o {tmp}/o.sdf", "a salt: the counter-ion(s) [Na+] are not part of the ligand"),
    ("prep {mixture.csv} -o {tmp}/o.sdf", "2 disconnected fragments"),
    ("prep {empty_name.csv} -o {tmp}/o.sdf", "row 2"),
    ("prep {binary.csv} -o {tmp}/o.sdf", "binary.csv"),
    ("prep {ligands.xyz} -o {tmp}/o.sdf", "unknown ligand file format '.xyz'"),
    ("prep {garbage.sdf} -o {tmp}/o.sdf", "garbage.sdf"),
    ("prep {good.csv} -o {tmp}", "is a folder; give a file name"),
    ("prep {good.csv} -o {good.csv}/o.sdf", "good.csv"),
    ("prep {good.csv}", "Missing option '--output'"),
    ("prep {good.csv} -o {tmp}/o.sdf --reference {missing.sdf}", "missing.sdf"),
    # ---------------------------------------------------------------- fep plan
    ("plan {missing.csv} -o {tmp}/n.json", "missing.csv"),
    ("plan {good.csv} -o {tmp}/n.json --mode docking", "--mode docking"),
    ("plan {good.csv} -o {tmp}/n.json --network ring", "--network ring"),
    ("plan {good.csv} -o {tmp}/n.json --star-reference benzene", "--star-reference needs --network star"),
    ("plan {good.csv} -o {tmp}/n.json --network star --star-reference xylene --mode hydration", "xylene"),
    ("plan {one.csv} -o {tmp}/n.json --mode hydration", "one.csv"),
    ("plan {good.csv} -o {tmp}/n.json --network {edges_unknown.csv} --mode hydration", "xylene"),
    ("plan {good.csv} -o {tmp}/n.json --network {edges_bad_header.csv} --mode hydration", "ligand_a"),
    ("plan {traversal.csv} -o {tmp}/n.json --mode hydration --images {tmp}/imgs", "'../../evil' is not a valid"),
    ("plan {bad_smiles.csv} -o {tmp}/n.json --mode hydration", "row 3"),
    ("plan {good.csv} -o {tmp}/n.json --protein {binary.pdb}", "binary.pdb: a binary file"),
    ("plan {good.csv} -o {tmp}/n.json --protein {protein.cif}", "mmCIF is not supported"),
    ("plan {good.csv} -o {tmp}/n.json --protein {missing.pdb}", "missing.pdb"),
    ("plan {good.csv} -o {tmp}/n.json --protein {garbage.pdb}", "garbage.pdb"),
    # ---------------------------------------------------------------- fep protein
    ("protein {missing.pdb}", "missing.pdb: file not found"),
    ("protein {binary.pdb}", "binary.pdb: a binary file"),
    ("protein {protein.cif}", "mmCIF is not supported; convert it to PDB"),
    ("protein {garbage.pdb}", "garbage.pdb"),
    ("protein {good.csv}", "good.csv"),
    # ---------------------------------------------------------------- fep protocol show
    ("protocol show turbo", "turbo"),
    ("protocol show {missing.json}", "missing.json"),
    ("protocol show {not_a_mapping.json}", "mapping"),
    ("protocol show {broken.json}", "broken.json"),
    ("protocol show {unknown_key.json}", "n_windowz"),
    ("protocol show {bad_base.json}", "base 'turbo'"),
    ("protocol show {bare_timestep.json}", "bare number"),
    ("protocol show {negative_timestep.json}", "timestep must be > 0"),
    ("protocol show {huge_timestep.json}", "above 4 fs"),
    ("protocol show {negative_temperature.json}", "temperature must be > 0"),
    ("protocol show {zero_pressure.json}", "pressure must be > 0"),
    ("protocol show {zero_iterations.json}", "n_iterations"),
    ("protocol show {one_window.json}", "n_windows"),
    ("protocol show {light_hydrogens.json}", "1.008 Da hydrogens"),
    ("protocol show {no_constraints.json}", "without bond constraints"),
    ("protocol show {tiny_cutoff.json}", "nonbonded_cutoff 0.3 nm"),
    ("protocol show {wrong_unit.json}", "temperature"),
    ("protocol show {bad_yaml.yaml}", "bad_yaml.yaml"),
    ("protocol show {unknown_charges.json}", "charge_method"),
    ("protocol show {repeats_zero.json}", "repeats"),
    # ---------------------------------------------------------------- fep run
    ("run -o {tmp}/r", "nothing to run"),
    ("run --ligands {missing.csv} -o {tmp}/r", "--ligands"),
    ("run --ligands {good.csv} --edge benzene,benzene -o {tmp}/r", "two different ligands"),
    ("run --ligands {good.csv} --edge benzene,xylene -o {tmp}/r --mode hydration", "xylene"),
    ("run --ligands {good.csv} --edge benzene -o {tmp}/r", "two ligand names"),
    ("run --ligands {good.csv} --mode docking -o {tmp}/r", "--mode 'docking'"),
    ("run --ligands {good.csv} --mode binding --edge benzene,toluene -o {tmp}/r", "needs a protein"),
    ("run --ligands {good.csv} --executor slurm -o {tmp}/r", "--executor 'slurm'"),
    ("run --ligands {good.csv} --scheduler tcp://x:1 -o {tmp}/r", "need --executor dask"),
    ("run --ligands {good.csv} --executor dask -o {tmp}/r", "--scheduler"),
    ("run --ligands {good.csv} --executor dask --cluster-config {missing.yaml} -o {tmp}/r", "missing.yaml"),
    ("run --ligands {good.csv} --platform Metal -o {tmp}/r", "--platform 'Metal'"),
    ("run --ligands {good.csv} --extend -1 -o {tmp}/r", "--extend"),
    ("run --ligands {good.csv} --ligand-ff mace -o {tmp}/r", "--ligand-ff 'mace'"),
    ("run --ligands {good.csv} --nnp mace -o {tmp}/r", "--nnp 'mace'"),
    ("run --ligands {good.csv} --workers 0 -o {tmp}/r", "--workers"),
    ("run --ligands {good.csv} --max-attempts 0 -o {tmp}/r", "--max-attempts"),
    ("run --ligands {good.csv} --protocol {negative_timestep.json} -o {tmp}/r", "timestep must be > 0"),
    ("run --ligands {good.csv} --edge benzene,toluene --mode hydration --charge-method hf -o {tmp}/r", "hf"),
    ("run --ligands {good.csv} --protein {missing.pdb} -o {tmp}/r", "--protein"),
    (
        "run --ligands {tyk2.sdf} --protein {xyz.pdb} --edge lig_ejm_54,lig_jmc_23 -o {tmp}/r",
        "chain A residue XYZ 923 has no force-field template",
    ),
    (  # a phosphothreonine without its phosphate: phosaa14SB's template says what is missing
        "run --ligands {tyk2.sdf} --protein {tpo.pdb} --edge lig_ejm_54,lig_jmc_23 -o {tmp}/r",
        "chain A residue TPO 923 does not match its phosaa14SB template (missing heavy atoms: O1P, O2P, O3P, P)",
    ),
    ("run --ligands {traversal.csv} --mode hydration -o {tmp}/r", "'../../evil' is not a valid name"),
    ("run {missing.json} -o {tmp}/r", "missing.json"),
    ("run {not_a_mapping.json} -o {tmp}/r", "not_a_mapping.json"),
    ("run --ligands {good.csv} --edge benzene,toluene --mode hydration -o {tmp}/r --resume", "no run to resume"),
    # ---------------------------------------------------------------- fep status / report
    ("status {tmp}", "not a run directory"),
    ("report {tmp}/nowhere -o {tmp}/rep", "nowhere"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad")
    for name, content in FILES.items():
        path = folder / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    tyk2 = REPO.parent / "shared" / "benchmarks" / "tyk2"
    (folder / "tyk2.sdf").write_text((tyk2 / "ligands.sdf").read_text())
    for name in ("XYZ", "TPO"):  # tyk2 with a residue no template matches, and a TPO without its phosphate
        lines = []
        for line in (tyk2 / "protein.pdb").read_text().splitlines():
            if line.startswith("ATOM") and line[17:20] == "THR" and line[22:26].strip() == "923":
                line = line[:17] + name + line[20:]
            lines.append(line)
        (folder / f"{name.lower()}.pdb").write_text("\n".join(lines) + "\n")
    return folder


def _argv(template: str, folder: Path, tmp: Path) -> list[str]:
    words = []
    for word in template.split():
        word = word.replace("{tmp}", str(tmp))
        while "{" in word:
            start, end = word.index("{"), word.index("}")
            word = word[:start] + str(folder / word[start + 1 : end]) + word[end + 1 :]
        words.append(word)
    return words


def test_there_are_enough_cases():
    assert len(CASES) >= 60 and len({c for c, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("command", "expected"), CASES, ids=[c for c, _ in CASES])
def test_bad_input_is_one_line_naming_the_problem(folder, tmp_path, capsys, command, expected):
    code = main(_argv(command, folder, tmp_path))
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert "Traceback" not in captured.err and "internal error" not in captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert expected in lines[0], lines[0]
    assert json.dumps(captured.out) == '""'  # nothing on stdout either
