"""The conformer-energy check of a ligand's force field against ANI-2x (fep.nnp.conformers)."""

from __future__ import annotations

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
pytest.importorskip("torchani")

from ligand_prep.models import BespokeTorsions, TorsionTerm  # noqa: E402


@pytest.fixture(scope="module")
def propylbenzene(tmp_path_factory, charge_cache):
    import tempfile
    from pathlib import Path

    from fep.nnp.conformers import ani_conformers
    from ligand_prep.charges import assign_charges
    from ligand_prep.io import read_ligands

    path = Path(tempfile.mkdtemp()) / "series.csv"
    path.write_text("name,smiles\npropylbenzene,CCCc1ccccc1\n")
    prep = assign_charges(read_ligands(path)[0], method="gasteiger", cache_dir=charge_cache)
    return prep, ani_conformers(prep, n=8)


def test_ani_minima_are_distinct_and_ordered(propylbenzene):
    from fep.nnp.conformers import _same_conformer

    prep, ani = propylbenzene
    mol = prep.ligand.to_rdkit()
    assert 2 <= len(ani.energies) <= 8  # anti and gauche propyl chains at least; mirror images merged
    assert np.all(np.diff(ani.energies) >= 0)
    for a in range(len(ani.energies)):
        for b in range(a):
            assert not _same_conformer(mol, ani.frames_nm[a], ani.frames_nm[b])
    # a conformer and its own mirror image count as one
    assert _same_conformer(mol, ani.frames_nm[0] * np.array([-1.0, 1.0, 1.0]), ani.frames_nm[0])


def test_conformer_check_scores_a_wrong_torsion_worse(propylbenzene):
    """A stiff term on the CH2-CH2 rotor in place of the force field's (anti 5 kcal/mol below gauche) puts MM's
    conformer energies far from ANI-2x's; the reference conformer's ddE is 0 by definition; with the rotors held,
    MM stays in every ANI-2x minimum."""
    from fep.nnp.conformers import check_conformers
    from fep.nnp.torsions import rotatable_torsions

    prep, ani = propylbenzene
    hold = rotatable_torsions(prep.ligand.to_rdkit())
    plain = check_conformers(prep, ani, hold=hold)
    assert plain.dde_kcal_mol[0] == 0.0 and len(plain.dde_kcal_mol) == plain.n_conformers >= 2
    assert plain.rmse_kcal_mol == pytest.approx(np.sqrt(np.mean(np.square(plain.dde_kcal_mol[1:]))), abs=1e-3)
    assert max(plain.rmsd_a) < 0.5  # MM keeps every ANI-2x minimum
    chain = next(d for d in hold if set(d[1:3]) == {1, 2})  # CH2-CH2
    term = TorsionTerm(atoms=chain, periodicity=1, phase_deg=0.0, k_kj_mol=15.0)
    record = BespokeTorsions(method="test", key="test", bonds=(chain[1:3],), terms=(term,))
    wrong = check_conformers(prep.model_copy(update={"torsions": record}), ani, hold=hold)
    assert wrong.rmse_kcal_mol > plain.rmse_kcal_mol + 1.0
