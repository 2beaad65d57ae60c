"""Run edges: for each leg build end states and the hybrid, sample with HREX, analyse, correct with ANI-2x.

Run-directory layout (every file written atomically; any stage can be resumed or re-run alone)::

    RUN_DIR/run.json                         RunSpec: mode, protocol, versions
    RUN_DIR/network.json                     the planned network (ligands with poses, edges with mappings)
    RUN_DIR/driver.json                      host and pid of the `fep run` process driving it (fep status)
    RUN_DIR/edges/<A>~<B>/edge.json          the edge's mapping
    RUN_DIR/edges/<A>~<B>/repeat_<r>/<leg>/  leg_key.json (what the leg's numbers depend on, fep.execution.legkey),
                                             end_states/ (plain A and B systems), hybrid/ (HybridLeg.save),
                                             sampler/ (HREX store), status.json, leg_result.json,
                                             nnp_A.json, nnp_B.json (ANI-2x corrections, made by the leg's
                                             worker right after sampling)
    RUN_DIR/edges/<A>~<B>/edge_result.json   EdgeResult (also written, with the error, when the edge fails)
    RUN_DIR/prepared/<name>.json             PreparedLigand (charges) read by workers (fep.execution.executors)
    RUN_DIR/mlfep.sqlite                     the results store (fep.execution.store): jobs, progress, results
    RUN_DIR/report/                          report.html, results.csv, edges.csv (analysis.report)

A leg's folder also holds ``sampler_summary.json`` (wall/CPU time of the last sampler call, atom count) and, when
it failed, ``error.txt`` (the traceback).

A finished leg (``leg_result.json`` newer than its last sampler checkpoint) is skipped; an interrupted one
resumes from its last checkpoint.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fep.execution.rundir import RunSpec
from fep.protocol import Protocol
from ligand_prep.models import AtomMapping, Ligand, Network, PreparedLigand
from mlfep_core import FrozenModel, InputError, MlfepError, atomic_write_text
from mlfep_core.constants import LEGS_FOR_MODE
from mlfep_core.names import inside

__all__ = [
    "LegProgress",
    "RunSpec",
    "finish_edge",
    "leg_finished",
    "load_prepared",
    "node_corrections",
    "prepare_ligands",
    "run_edge",
    "run_leg",
    "run_network",
    "save_prepared",
]

log = logging.getLogger(__name__)


class LegProgress(FrozenModel):
    """Progress of one leg, as the CLI and `fep status` show it."""

    edge: str
    leg: str
    repeat: int
    phase: str
    done: int
    total: int
    ns_done: float
    ns_total: float
    eta_s: float | None
    pid: int
    updated: float


def prepare_ligands(
    ligands: Sequence[Ligand], protocol: Protocol, progress: Callable[[str], None] | None = None
) -> dict[str, PreparedLigand]:
    """Charges (cached on disk) for every ligand, and its torsions refitted to ANI-2x when the protocol asks."""
    from ligand_prep.charges import assign_charges

    out = {}
    for lig in ligands:
        if progress:
            progress(f"charges for {lig.name}")
        out[lig.name] = assign_charges(
            lig, method=protocol.charge_method, forcefield=protocol.system.small_molecule_forcefield
        )
    if protocol.ligand_torsions == "ani2x":
        from fep.nnp.torsions import fit_bespoke_torsions

        for name, prep in out.items():
            if progress:
                progress(f"ANI-2x torsion scans for {name}")
            out[name] = fit_bespoke_torsions(prep, progress=None)
    return out


# ------------------------------------------------------------------------------------------------ legs
def _build_leg(prep_a, prep_b, mapping, leg, protocol, protein, leg_dir: Path, cofactors: Sequence[str] = ()):
    """Build (or reload) the end states and hybrid of one leg."""
    import openmm

    from fep.alchemy.hybrid import HybridLeg, build_hybrid
    from fep.systems.cofactors import prepare_cofactors
    from fep.systems.endstates import build_end_states

    hybrid_dir = leg_dir / "hybrid"
    if (hybrid_dir / "leg.json").exists():
        return HybridLeg.load(hybrid_dir)
    prepared = (
        prepare_cofactors(cofactors, protocol.charge_method, protocol.system.small_molecule_forcefield)
        if leg == "complex"
        else []
    )
    end_states = build_end_states(
        prep_a, prep_b, mapping, leg, settings=protocol.system, protein_pdb=protein, cofactors=prepared
    )
    es_dir = leg_dir / "end_states"
    for tag in ("a", "b"):
        atomic_write_text(
            es_dir / f"system_{tag}.xml", openmm.XmlSerializer.serialize(getattr(end_states, f"system_{tag}"))
        )
    atomic_write_text(
        es_dir / "atoms.json",
        json.dumps({"ligand_atoms_a": end_states.ligand_atoms_a, "ligand_atoms_b": end_states.ligand_atoms_b}),
    )
    hybrid = build_hybrid(end_states, mapping)
    hybrid.save(hybrid_dir)  # leg.json is written last: it marks a complete build
    return hybrid


#: Why the ANI-2x endpoint correction is not applied to a charge-changing edge.
CHARGE_CHANGE_NNP = (
    "charge-changing edge: the ANI-2x endpoint correction is not applied (with fixed MM charges and a co-ion the "
    "ML/MM difference of two ligands of different net charge is not validated); the MM value stands"
)


def _write_status(leg_dir: Path, edge: str, leg: str, repeat: int, **fields: Any) -> None:
    status = LegProgress(
        edge=edge,
        leg=leg,
        repeat=repeat,
        pid=os.getpid(),
        updated=time.time(),
        **{
            "phase": "starting",
            "done": 0,
            "total": 0,
            "ns_done": 0.0,
            "ns_total": 0.0,
            "eta_s": None,
            **fields,
        },
    )
    status.to_json_file(leg_dir / "status.json")


def leg_finished(leg_dir: str | os.PathLike[str], n_iterations: int) -> bool:
    """Whether a leg has a ``leg_result.json`` newer than its last checkpoint with ``n_iterations`` or more."""
    from analysis.results import LegResult

    leg_dir = Path(leg_dir)
    result_path = leg_dir / "leg_result.json"
    checkpoint = leg_dir / "sampler" / "checkpoint.json"
    if not (result_path.exists() and checkpoint.exists()):
        return False
    if result_path.stat().st_mtime < checkpoint.stat().st_mtime:
        return False
    try:
        return LegResult.from_json_file(result_path).n_iterations >= n_iterations
    except Exception:  # a damaged result is simply redone
        return False


def run_leg(
    prep_a: PreparedLigand,
    prep_b: PreparedLigand,
    mapping: AtomMapping,
    leg: str,
    protocol: Protocol,
    leg_dir: str | os.PathLike[str],
    *,
    protein: str | None = None,
    cofactors: Sequence[str] = (),
    repeat: int = 0,
    platform: str | None = None,
    extend_iterations: int = 0,
    progress: Callable[[LegProgress], None] | None = None,
):
    """Build, sample and analyse one leg; returns its :class:`analysis.results.LegResult`."""
    from analysis.mbar import analyse_leg
    from analysis.results import LegResult
    from fep.sampling.hrex import HREXSampler
    from fep.sampling.storage import load_samples

    leg_dir = Path(leg_dir)
    result_path = leg_dir / "leg_result.json"
    sampler_dir = leg_dir / "sampler"
    charged = bool(mapping.charge_change)
    windows = protocol.windows(charge_change=charged)
    settings = protocol.sampler_for(leg, repeat=repeat, platform=platform, charge_change=charged)
    if extend_iterations == 0 and leg_finished(leg_dir, settings.n_iterations):
        log.info("%s %s: finished earlier, skipped", mapping.key, leg)
        return LegResult.from_json_file(result_path)

    def report(phase: str, **fields: Any) -> None:
        _write_status(leg_dir, mapping.key, leg, repeat, phase=phase, **fields)
        if progress:
            progress(LegProgress.from_json_file(leg_dir / "status.json"))

    report("building")
    hybrid = _build_leg(prep_a, prep_b, mapping, leg, protocol, protein, leg_dir, cofactors)
    system = hybrid.system
    if protocol.rest2.enabled:  # the saved hybrid stays plain; the sampler runs its REST2-scaled copy
        from fep.alchemy.hybrid import FORCE_GROUPS
        from fep.alchemy.rest import add_rest2, region_of

        system = copy.deepcopy(system)
        add_rest2(system, region_of(hybrid.info), hybrid.info.lambda_parameters, FORCE_GROUPS["valence_lambda"])
    placement = None
    if protocol.lambda_placement.enabled:
        placement = _place_windows(system, hybrid, windows, protocol, settings, leg_dir, leg, report)
        windows = tuple(placement["windows"])
    sampler = HREXSampler(
        system,
        hybrid.topology,
        hybrid.positions,
        hybrid.box_vectors,
        protocol.states(charge_change=charged, windows=windows),
        settings,
        sampler_dir,
        static_force_groups=hybrid.info.lambda_independent_groups,
    )

    def on_progress(p) -> None:
        report(p.phase, done=p.iteration, total=p.n_iterations, ns_done=p.ns_done, ns_total=p.ns_total, eta_s=p.eta_s)

    if extend_iterations:
        summary = sampler.extend(extend_iterations, progress=on_progress)
    else:
        summary = sampler.run(progress=on_progress)
    if summary is not None:  # wall / CPU time per call: the cost model's calibration data (fep.execution.cost)
        record = {
            "n_atoms": int(hybrid.system.getNumParticles()),
            "steps_per_iteration": settings.steps_per_iteration,
            "threads": int(os.environ.get("OPENMM_CPU_THREADS") or os.cpu_count() or 1),
            **summary.model_dump(mode="json"),
        }
        atomic_write_text(leg_dir / "sampler_summary.json", json.dumps(record, indent=1))
    report("analysing")
    data = load_samples(sampler_dir)
    result = analyse_leg(data.energies, data.replica_states, data.temperature_k, leg=leg, lambda_windows=windows)
    if placement is not None:
        result = result.model_copy(update={"lambda_placement": {k: v for k, v in placement.items() if k != "windows"}})
    result.to_json_file(result_path)
    report("done", done=data.n_iterations, total=data.n_iterations)
    return result


PLACEMENT_FILE = "lambda_placement.json"


def _place_windows(system, hybrid, windows, protocol, settings, leg_dir: Path, leg: str, report) -> dict[str, Any]:
    """The leg's λ ladder refined from the overlap of a short first pass (``protocol.lambda_placement``).

    The first pass runs in ``LEG/placement_pass`` (resumable like any sampler folder); its outcome is written
    atomically to ``LEG/lambda_placement.json`` and reused on resume and ``--extend``. Returns the record: the
    first pass's windows, iterations and neighbour overlaps, the refined gaps and the new ``windows``.
    """
    from analysis.mbar import analyse_leg
    from fep.alchemy.lambdas import refine_windows
    from fep.sampling.hrex import HREXSampler
    from fep.sampling.storage import load_samples

    path = leg_dir / PLACEMENT_FILE
    if path.exists():
        record = json.loads(path.read_text())
        if record.get("first_pass_windows") == [dict(w) for w in windows]:
            return record
    place = protocol.lambda_placement
    first = settings.model_copy(update={"n_iterations": place.first_pass_iterations})
    folder = leg_dir / "placement_pass"
    sampler = HREXSampler(
        system,
        hybrid.topology,
        hybrid.positions,
        hybrid.box_vectors,
        protocol.states(windows=windows),
        first,
        folder,
        static_force_groups=hybrid.info.lambda_independent_groups,
    )
    n = len(windows)

    def on_progress(p) -> None:  # one monotone count for the whole pass: equilibration first half, sampling second
        if p.phase == "production":
            share = 0.5 + 0.5 * p.iteration / max(1, p.n_iterations)
        else:
            share = 0.25 * (p.phase == "equilibration_npt") + 0.25 * p.iteration / max(1, p.n_iterations)
        report("placement", done=round(1000 * share), total=1000, eta_s=None)

    sampler.run(progress=on_progress)
    data = load_samples(folder)
    first_result = analyse_leg(data.energies, data.replica_states, data.temperature_k, leg=leg)
    overlap = first_result.overlap_matrix
    new_windows, gaps = refine_windows(windows, overlap, place.target_overlap, place.max_added_windows)
    record = {
        "first_pass_windows": [dict(w) for w in windows],
        "first_pass_iterations": place.first_pass_iterations,
        "first_pass_neighbour_overlap": [float(overlap[k][k + 1]) for k in range(n - 1)],
        "target_overlap": place.target_overlap,
        "refined_gaps": gaps,
        "n_windows": len(new_windows),
        "windows": [dict(w) for w in new_windows],
    }
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    log.info("%s: λ placement added %d window(s) to %d", leg_dir, len(new_windows) - n, n)
    return record


def correct_leg(
    prep_a: PreparedLigand,
    prep_b: PreparedLigand,
    leg: str,
    protocol: Protocol,
    leg_dir: str | os.PathLike[str],
    *,
    platform: str | None = None,
) -> list:
    """ANI-2x endpoint corrections of both end states of a sampled leg (cached as nnp_A.json / nnp_B.json)."""
    import openmm

    from analysis.results import EndpointCorrection
    from fep.alchemy.hybrid import HybridLegInfo
    from fep.nnp.correction import endpoint_correction, nnp_support
    from fep.sampling.storage import load_samples

    leg_dir = Path(leg_dir)
    info = HybridLegInfo.from_json_file(leg_dir / "hybrid" / "leg.json")
    atoms = json.loads((leg_dir / "end_states" / "atoms.json").read_text())
    checkpoint = leg_dir / "sampler" / "checkpoint.json"
    data = None
    out = []
    states: tuple[tuple[Literal["A", "B"], PreparedLigand], ...] = (("A", prep_a), ("B", prep_b))
    for state, prep in states:
        path = leg_dir / f"nnp_{state}.json"
        if path.exists() and path.stat().st_mtime >= checkpoint.stat().st_mtime:
            out.append(EndpointCorrection.from_json_file(path))
            continue
        ok, reason = nnp_support(prep)
        if not ok:
            corr = EndpointCorrection(
                leg=leg,
                state=state,
                ligand=prep.name,
                dg_kcal_mol=None,
                dg_err_kcal_mol=None,
                n_effective=None,
                min_overlap=None,
                status="skipped",
                reason=reason,
            )
        else:
            if data is None:
                data = load_samples(leg_dir / "sampler")
            frames, boxes = data.end_state_frames(0 if state == "A" else -1)
            if state == "A":
                frames = frames[:, : info.n_atoms_a]
            else:
                frames = frames[:, np.asarray(info.b_to_hybrid)]
            tag = state.lower()
            system = openmm.XmlSerializer.deserialize((leg_dir / "end_states" / f"system_{tag}.xml").read_text())
            settings = protocol.nnp
            if platform:
                settings = settings.model_copy(update={"platform": platform})
            started, started_cpu = time.perf_counter(), time.process_time()
            corr = endpoint_correction(
                system,
                None,
                atoms[f"ligand_atoms_{tag}"],
                frames,
                boxes,
                prep,
                leg=leg,
                state=state,
                temperature_k=data.temperature_k,
                settings=settings,
            )
            cost = {"wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - started_cpu}
            corr = corr.model_copy(update=cost)
        corr.to_json_file(path)
        out.append(corr)
    return out


def node_corrections(
    ligands: Sequence[tuple[str, PreparedLigand]],
    envs: Sequence[str],
    protocol: Protocol,
    run_dir: str | os.PathLike[str],
    *,
    protein: str | None = None,
    cofactors: Sequence[str] = (),
    platform: str | None = None,
) -> list:
    """ANI-2x node corrections (one per ligand and environment, :mod:`fep.nnp.nodes`), each labelled with its
    end state: ``ligands`` is a sequence of (state 'A'/'B', prepared ligand).

    A correction that raises is returned as status 'fail' with the reason (the edge keeps its MM value) and is not
    cached. Cached as ``RUN_DIR/nodes/<ligand>/<env>.json``. The first result written wins: a worker that computed the
    same node concurrently adopts the stored one, so every edge of a ligand uses the same number (the ML cycle
    closures then equal the MM ones exactly).
    """
    from analysis.results import EndpointCorrection
    from fep.nnp.nodes import node_correction

    out = []
    for env in envs:
        for state, prep in ligands:
            path = Path(run_dir) / "nodes" / prep.name / f"{env}.json"
            if path.exists():
                corr = EndpointCorrection.from_json_file(path)
            else:
                try:
                    corr = node_correction(
                        prep,
                        env,
                        protocol,
                        protein_pdb=protein if env == "complex" else None,
                        cofactors=cofactors if env == "complex" else (),
                        platform=platform,
                    )
                except Exception as err:  # the MM result stands; not cached, so a later finish retries it
                    log.warning("node correction %s/%s failed: %s", prep.name, env, err)
                    reason = f"node correction failed: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}"
                    out.append(EndpointCorrection(leg=env, state=state, ligand=prep.name, status="fail", reason=reason))
                    continue
                if path.exists():
                    corr = EndpointCorrection.from_json_file(path)
                else:
                    corr.to_json_file(path)
            out.append(corr.model_copy(update={"state": state}))
    return out


# ----------------------------------------------------------------------------------------------- edges
def edge_dir(run_dir: str | os.PathLike[str], mapping: AtomMapping) -> Path:
    """The folder of one edge inside a run directory (checked to stay inside it)."""
    return inside(Path(run_dir) / "edges" / mapping.key, Path(run_dir) / "edges")


def run_edge(
    prepared: dict[str, PreparedLigand],
    mapping: AtomMapping,
    spec: RunSpec,
    run_dir: str | os.PathLike[str],
    *,
    platform: str | None = None,
    extend_iterations: int = 0,
    progress: Callable[[LegProgress], None] | None = None,
):
    """Every leg and repeat of one edge in this process, then the NNP corrections and the edge's ΔΔG.

    Returns the :class:`analysis.results.EdgeResult` (also written to ``edge_result.json``).
    """
    folder = edge_dir(run_dir, mapping)
    mapping.to_json_file(folder / "edge.json")
    prep_a, prep_b = prepared[mapping.ligand_a], prepared[mapping.ligand_b]
    for r in range(spec.protocol.repeats):
        for leg in LEGS_FOR_MODE[spec.mode]:
            run_leg(
                prep_a,
                prep_b,
                mapping,
                leg,
                spec.protocol,
                folder / f"repeat_{r}" / leg,
                protein=spec.protein if leg == "complex" else None,
                cofactors=spec.cofactors if leg == "complex" else (),
                repeat=r,
                platform=platform,
                extend_iterations=extend_iterations,
                progress=progress,
            )
    return finish_edge(prepared, mapping, spec, run_dir, platform=platform)


def finish_edge(
    prepared: dict[str, PreparedLigand],
    mapping: AtomMapping,
    spec: RunSpec,
    run_dir: str | os.PathLike[str],
    *,
    platform: str | None = None,
):
    """Once every leg of an edge has its ``leg_result.json``: NNP corrections (if ``spec.nnp``) and the ΔΔG.

    Returns the :class:`analysis.results.EdgeResult` (also written to ``edge_result.json``).
    """
    from analysis.results import EndpointCorrection, LegResult, combine_edge

    folder = edge_dir(run_dir, mapping)
    prep_a, prep_b = prepared[mapping.ligand_a], prepared[mapping.ligand_b]
    protocol = spec.protocol
    legs = LEGS_FOR_MODE[spec.mode]
    if spec.nnp and mapping.charge_change:  # the MM result stands, with the reason in the edge result
        spec = spec.model_copy(update={"nnp": False})
        skipped = [
            EndpointCorrection(leg=leg, state=state, ligand=prep.name, status="skipped", reason=CHARGE_CHANGE_NNP)
            for leg in legs
            for state, prep in (("A", prep_a), ("B", prep_b))
        ]
    else:
        skipped = []
    at_nodes = spec.nnp and protocol.nnp.placement == "node"
    nodes = skipped + (
        node_corrections(
            (("A", prep_a), ("B", prep_b)),
            legs,
            protocol,
            run_dir,
            protein=spec.protein,
            cofactors=spec.cofactors,
            platform=platform,
        )
        if at_nodes
        else []
    )
    repeats = []
    for r in range(protocol.repeats):
        leg_results = {}
        corrections = list(nodes)
        for leg in legs:
            leg_dir = folder / f"repeat_{r}" / leg
            leg_results[leg] = LegResult.from_json_file(leg_dir / "leg_result.json")
            if spec.nnp and not at_nodes:
                corrections.extend(correct_leg(prep_a, prep_b, leg, protocol, leg_dir, platform=platform))
        repeats.append(combine_edge(mapping.ligand_a, mapping.ligand_b, spec.mode, leg_results, corrections))
    if len(repeats) == 1:
        result = repeats[0]
    else:
        first = repeats[0]
        result = combine_edge(
            mapping.ligand_a, mapping.ligand_b, spec.mode, dict(first.legs), first.corrections, repeats=repeats
        )
    from fep.protocol import ligand_ff_label

    result = result.model_copy(
        update={
            "ligand_ff": ligand_ff_label(protocol, spec.nnp or bool(skipped)),
            "charge_change": mapping.charge_change,
        }
    )
    result.to_json_file(folder / "edge_result.json")
    return result


def save_prepared(prepared: dict[str, PreparedLigand], run_dir: str | os.PathLike[str]) -> None:
    """Write every prepared ligand to ``RUN_DIR/prepared/<name>.json`` (what workers elsewhere read)."""
    for name, prep in prepared.items():
        path = Path(run_dir) / "prepared" / f"{name}.json"
        text = prep.model_dump_json()
        if not path.exists() or path.read_text() != text:
            atomic_write_text(path, text)


def load_prepared(run_dir: str | os.PathLike[str], names: Sequence[str]) -> dict[str, PreparedLigand]:
    """The prepared ligands ``names`` saved by :func:`save_prepared`."""
    out = {}
    for name in names:
        path = Path(run_dir) / "prepared" / f"{name}.json"
        if not path.exists():
            raise InputError(f"{path}: prepared ligand missing; re-run `fep run ... --resume` to prepare it")
        out[name] = PreparedLigand.from_json_file(path)
    return out


def run_network(
    network: Network,
    spec: RunSpec,
    run_dir: str | os.PathLike[str],
    *,
    platform: str | None = None,
    extend_iterations: int = 0,
    progress: Callable[[LegProgress], None] | None = None,
    message: Callable[[str], None] | None = None,
) -> list:
    """Run every edge of ``network`` in order; a failed edge is recorded and the rest carry on."""
    from analysis.results import EdgeResult

    run_dir = Path(run_dir)
    prepared = prepare_ligands(network.ligands, spec.protocol, progress=message)
    results = []
    for mapping in network.edges:
        try:
            results.append(
                run_edge(
                    prepared,
                    mapping,
                    spec,
                    run_dir,
                    platform=platform,
                    extend_iterations=extend_iterations,
                    progress=progress,
                )
            )
        except KeyboardInterrupt:
            raise
        except Exception as err:  # a failed edge must not stop the network
            text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            kind = "" if isinstance(err, MlfepError) else f"{type(err).__name__}: "
            log.error("edge %s failed: %s%s", mapping.key, kind, text)
            failed = EdgeResult.failed(mapping.ligand_a, mapping.ligand_b, spec.mode, f"{kind}{text}")
            folder = edge_dir(run_dir, mapping)
            failed.to_json_file(folder / "edge_result.json")
            atomic_write_text(folder / "error.txt", traceback.format_exc())
            results.append(failed)
            if message:
                message(f"edge {mapping.key} failed: {kind}{text}")
    return results
