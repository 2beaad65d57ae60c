"""On-disk layout of a replica-exchange run: atomic checkpoints, per-iteration chunks, end-state snapshots.

A sampler folder holds::

    sampler.json                 what was run: states, temperature, pressure, settings, system fingerprint
    checkpoint.json              the last valid checkpoint: iteration, the valid chunk/snapshot/state files,
                                 swap counts, RNG state, current time step (written last, atomically)
    checkpoint.prev.json         the checkpoint before it (its files are kept too): what a resume falls back to
                                 when a file of the last checkpoint is damaged
    data/iter_<start>_<stop>.npz per-iteration arrays of iterations [start, stop) (compressed npz)
    snapshots/state<k>_<start>_<stop>.xtc   end-state configurations (state 0 and K-1), with unit cell
    state/state_<iteration>.npz  replica positions, velocities, boxes and states at the checkpoint

Every file is written to a temporary name, fsynced and renamed; ``checkpoint.json`` is renamed last and names
the files that belong to the run, so a process killed at any moment leaves a consistent run. Files it does not
name (written after the last checkpoint) are removed on resume by :meth:`SamplerStore.discard_uncommitted`.
Chunks and snapshots are only ever appended, so the previous checkpoint's files are a subset of the last one's
plus its own replica-state file; :meth:`SamplerStore.resume_point` verifies the last checkpoint and, when one of its
files is truncated or corrupted (a disk that filled up, a copy cut short), names that file and resumes from the
previous one.

:func:`load_samples` reads a folder (also while a run is going on) into :class:`SamplerData`.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlfep_core import DiskFullError, InputError, atomic_write_bytes, atomic_write_text

__all__ = ["IterationBuffer", "SamplerData", "SamplerStore", "load_samples"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
_META = "sampler.json"
_CHECKPOINT = "checkpoint.json"
_PREVIOUS = "checkpoint.prev.json"
_SUBDIRS = ("data", "snapshots", "state")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file; a missing, truncated or corrupted file is an :class:`InputError` naming it."""
    import zipfile

    try:
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError as err:
        raise InputError(
            f"{path}: missing from the sampler folder; delete {path.parent.parent} to rerun this leg"
        ) from err
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(
            f"{path}: damaged ({type(err).__name__}: {err}); delete {path.parent.parent} to rerun this leg"
        ) from err


# ------------------------------------------------------------------------------------------ buffers
@dataclass
class IterationBuffer:
    """Per-iteration results produced since the last checkpoint (held in memory until it is written)."""

    iterations: list[int] = field(default_factory=list)
    energies: list[np.ndarray] = field(default_factory=list)  # each (K, K) kT, [replica, state]
    replica_states: list[np.ndarray] = field(default_factory=list)  # each (K,) int
    accepted: list[np.ndarray] = field(default_factory=list)  # each (K, K) int, [state, state]
    proposed: list[np.ndarray] = field(default_factory=list)  # each (K, K) int
    snapshots: dict[int, list[tuple[int, np.ndarray, np.ndarray | None]]] = field(default_factory=dict)

    def add_snapshot(self, state: int, iteration: int, positions: np.ndarray, box: np.ndarray | None) -> None:
        """Keep one end-state configuration: positions (N, 3) nm, box (3, 3) nm or None."""
        self.snapshots.setdefault(state, []).append(
            (iteration, np.asarray(positions, dtype=np.float32), None if box is None else np.asarray(box, np.float32))
        )

    def __len__(self) -> int:
        return len(self.iterations)


# ------------------------------------------------------------------------------------------- store
def _fsync_replace(tmp: Path, final: Path) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)


def _npz_bytes(compress: bool = True, **arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    writer: Any = np.savez_compressed if compress else np.savez  # numpy's stub cannot type **arrays
    writer(buffer, **arrays)
    return buffer.getvalue()


class SamplerStore:
    """Reads and writes one sampler folder (see the module docstring for the layout).

    Parameters
    ----------
    folder : path
        The run folder; created when missing.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    # ------------------------------------------------------------------ metadata and checkpoint json
    def read_metadata(self) -> dict[str, Any] | None:
        """``sampler.json`` as a dict, or None for a new folder."""
        return self._read_json(self.folder / _META)

    def write_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Write ``sampler.json`` atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.folder / _META, json.dumps({"format": FORMAT_VERSION, **metadata}, indent=1) + "\n")

    def read_checkpoint(self) -> dict[str, Any] | None:
        """``checkpoint.json`` as a dict, or None when no checkpoint was written yet."""
        return self._read_json(self.folder / _CHECKPOINT)

    def _read_json(self, path: Path) -> dict[str, Any] | None:
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"{path}: unreadable sampler file ({err}); remove the folder to start over") from err
        if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
            raise InputError(f"{path}: not a sampler file of format {FORMAT_VERSION}")
        return data

    # ---------------------------------------------------------------------------------- locking
    def lock(self):
        """Take the folder's run lock (released when the returned file is closed or the process dies).

        Raises
        ------
        BlockingIOError
            Another process holds it.
        """
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        handle = open(self.folder / ".lock", "a")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise
        return handle

    # ---------------------------------------------------------------------------------- resume
    def committed_files(self, checkpoint: Mapping[str, Any] | None) -> set[str]:
        """Relative paths of every file the checkpoint names."""
        if checkpoint is None:
            return set()
        names = {c["file"] for c in checkpoint["chunks"]}
        for files in checkpoint["snapshots"].values():
            names.update(s["file"] for s in files)
        if checkpoint.get("state_file"):
            names.add(checkpoint["state_file"])
        return names

    def discard_uncommitted(self, checkpoint: Mapping[str, Any] | None) -> list[str]:
        """Delete data written after the last checkpoint (and temp files); returns what was removed."""
        keep = self.committed_files(checkpoint) | self.committed_files(self._previous())
        removed = []
        for sub in _SUBDIRS:
            folder = self.folder / sub
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                rel = f"{sub}/{path.name}"
                if path.is_file() and rel not in keep:
                    path.unlink(missing_ok=True)
                    removed.append(rel)
        for path in self.folder.glob(".*.tmp"):
            path.unlink(missing_ok=True)
            removed.append(path.name)
        return removed

    def load_state(self, checkpoint: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Replica arrays of a checkpoint: positions/velocities (K, N, 3), boxes (K, 3, 3), replica_states (K,)."""
        return read_npz(self.folder / checkpoint["state_file"])

    def verify(self, checkpoint: Mapping[str, Any] | None) -> None:
        """Check that every data chunk and the replica state a checkpoint names can be read and has the
        iterations it should (done on resume, before any sampling).

        Raises
        ------
        InputError
            Names the damaged or missing file and what to do.
        """
        if checkpoint is None:
            return
        for chunk in checkpoint["chunks"]:
            data = read_npz(self.folder / chunk["file"])
            n = chunk["stop"] - chunk["start"]
            if any(len(data.get(key, ())) != n for key in ("iterations", "energies", "replica_states")):
                raise InputError(
                    f"{self.folder / chunk['file']}: holds the wrong number of iterations (expected {n}); the "
                    f"sampler folder is damaged: delete {self.folder} to rerun this leg"
                )
        self.load_state(checkpoint)

    def _previous(self) -> dict[str, Any] | None:
        """``checkpoint.prev.json`` when it exists and is readable, else None."""
        try:
            return self._read_json(self.folder / _PREVIOUS)
        except InputError:
            return None

    def resume_point(self) -> dict[str, Any] | None:
        """The checkpoint to resume from, every file it names verified (None for a run without checkpoint).

        The last checkpoint when it and its files are intact. When ``checkpoint.json`` or one of its files is
        damaged, the previous checkpoint, if that one is intact: it becomes ``checkpoint.json`` again and a warning
        names the damaged file and the iteration the run goes back to.

        Raises
        ------
        InputError
            Neither checkpoint is intact (names the damaged file and what to do).
        """
        try:
            record = self.read_checkpoint()
            self.verify(record)
            return record
        except InputError as err:
            previous = self._previous()
            if previous is None:
                raise
            try:
                self.verify(previous)
            except InputError:
                raise err from None
            logger.warning(
                "%s; resuming from the previous checkpoint (iteration %d)",
                str(err).split("; delete ")[0],
                int(previous["iteration"]),
            )
            atomic_write_text(self.folder / _CHECKPOINT, json.dumps(previous, indent=1) + "\n")
            return previous

    # ------------------------------------------------------------------------------ checkpointing
    def write_checkpoint(
        self,
        previous: Mapping[str, Any] | None,
        buffer: IterationBuffer,
        replica_arrays: Mapping[str, np.ndarray],
        fields: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Write the buffered iterations, snapshots and replica state, then ``checkpoint.json`` (last).

        Parameters
        ----------
        previous : dict or None
            The checkpoint this one extends (its chunks and snapshots are kept).
        buffer : IterationBuffer
            Iterations since ``previous``; must continue exactly at ``previous["iteration"]``.
        replica_arrays : mapping
            ``positions``, ``velocities`` (K, N, 3) nm and nm/ps, ``boxes`` (K, 3, 3) nm, ``replica_states`` (K,).
        fields : mapping
            Other JSON fields to record: must include ``iteration`` (production iterations done).

        Returns
        -------
        dict
            The new checkpoint (as written).

        Raises
        ------
        DiskFullError
            The disk (or quota) is full: nothing of this checkpoint is committed and the last one stays intact.
        """
        with self._disk_full_named(previous, fields):
            for sub in _SUBDIRS:
                (self.folder / sub).mkdir(parents=True, exist_ok=True)
            chunks = list(previous["chunks"]) if previous else []
            snapshots = {k: list(v) for k, v in previous["snapshots"].items()} if previous else {}
            iteration = int(fields["iteration"])
            start = int(previous["iteration"]) if previous else 0
            if len(buffer):
                if buffer.iterations[0] != start or buffer.iterations[-1] != iteration - 1:
                    raise RuntimeError(
                        f"sampler buffer holds iterations {buffer.iterations[0]}..{buffer.iterations[-1]} "
                        f"but the checkpoint goes from {start} to {iteration}"
                    )
                rel = f"data/iter_{start:09d}_{iteration:09d}.npz"
                atomic_write_bytes(
                    self.folder / rel,
                    _npz_bytes(
                        iterations=np.asarray(buffer.iterations, dtype=np.int64),
                        energies=np.asarray(buffer.energies, dtype=np.float64),
                        replica_states=np.asarray(buffer.replica_states, dtype=np.int32),
                        accepted=np.asarray(buffer.accepted, dtype=np.int32),
                        proposed=np.asarray(buffer.proposed, dtype=np.int32),
                    ),
                )
                chunks.append({"file": rel, "start": start, "stop": iteration})
            for state, frames in buffer.snapshots.items():
                if not frames:
                    continue
                rel = f"snapshots/state{state}_{frames[0][0]:09d}_{frames[-1][0]:09d}.xtc"
                self._write_xtc(self.folder / rel, frames)
                snapshots.setdefault(str(state), []).append({"file": rel, "n_frames": len(frames)})
            state_rel = f"state/state_{iteration:09d}_{int(fields.get('checkpoint_index', 0)):06d}.npz"
            atomic_write_bytes(
                self.folder / state_rel, _npz_bytes(False, **{k: np.asarray(v) for k, v in replica_arrays.items()})
            )
            checkpoint = {
                "format": FORMAT_VERSION,
                **fields,
                "chunks": chunks,
                "snapshots": snapshots,
                "state_file": state_rel,
            }
            if previous is not None:
                atomic_write_text(self.folder / _PREVIOUS, json.dumps(dict(previous), indent=1) + "\n")
            atomic_write_text(self.folder / _CHECKPOINT, json.dumps(checkpoint, indent=1) + "\n")
            keep = {state_rel, previous.get("state_file") if previous else None}
            for path in (self.folder / "state").glob("state_*.npz"):  # older checkpoints' replica states
                if f"state/{path.name}" not in keep:
                    path.unlink(missing_ok=True)
            return checkpoint

    @contextlib.contextmanager
    def _disk_full_named(self, previous: Mapping[str, Any] | None, fields: Mapping[str, Any]):
        """An ENOSPC/EDQUOT inside becomes a :class:`DiskFullError` naming the folder and the checkpoint kept."""
        try:
            yield
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            last = int(previous["iteration"]) if previous else None
            kept = f"the last good checkpoint (iteration {last}) is kept" if previous else "no checkpoint was written"
            raise DiskFullError(
                f"{self.folder}: no space left on the device while writing the checkpoint of iteration "
                f"{fields['iteration']}; {kept}: free disk space, then resume (fep run ... --resume)"
            ) from err

    @staticmethod
    def _write_xtc(path: Path, frames: list[tuple[int, np.ndarray, np.ndarray | None]]) -> None:
        from mdtraj.formats import XTCTrajectoryFile

        xyz = np.stack([f[1] for f in frames]).astype(np.float32)
        steps = np.asarray([f[0] for f in frames], dtype=np.int32)
        box = None if frames[0][2] is None else np.stack([np.asarray(f[2]) for f in frames]).astype(np.float32)
        tmp = path.with_name(f".{path.stem}.tmp.xtc")
        try:
            with XTCTrajectoryFile(str(tmp), "w") as handle:
                handle.write(xyz, time=steps.astype(np.float32), step=steps, box=box)
            _fsync_replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def size_bytes(self) -> int:
        """Bytes on disk of the whole folder."""
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class SamplerData:
    """The stored results of a replica-exchange run (what the analysis consumes).

    Attributes
    ----------
    folder : Path
        The run folder.
    states : tuple of dict
        The K thermodynamic states (global parameter name -> value), in order.
    temperature_k : float
        Temperature in kelvin (the ``kT`` of every reduced energy).
    pressure_bar : float or None
        Pressure in bar (NPT) or None (NVT).
    iterations : ndarray, shape (N_iter,)
        Production iteration indices, 0..N_iter-1 (no gaps, no duplicates).
    energies : ndarray, shape (N_iter, K, K)
        Reduced potentials in kT: ``energies[n, r, l]`` = u_l(x_r) of replica ``r``'s configuration at the end
        of iteration ``n`` evaluated in state ``l`` (u = β(U + pV) with the replica's box volume when NPT).
    replica_states : ndarray, shape (N_iter, K)
        ``replica_states[n, r]``: the state replica ``r`` was propagated in (and sampled from) at iteration n.
    accepted, proposed : ndarray, shape (K, K)
        Accepted and proposed state swaps per state pair over all iterations (symmetric).
    accepted_nkl, proposed_nkl : ndarray, shape (N_iter, K, K)
        The same per iteration.
    timestep_fs : float
        Time step in use at the last checkpoint (smaller than the setting after NaN recovery).
    platform : str
        OpenMM platform the run used last.
    metadata : dict
        ``sampler.json`` (settings, system fingerprint, ...).
    checkpoint : dict
        ``checkpoint.json``.
    """

    folder: Path
    states: tuple[dict[str, float], ...]
    temperature_k: float
    pressure_bar: float | None
    iterations: np.ndarray
    energies: np.ndarray
    replica_states: np.ndarray
    accepted: np.ndarray
    proposed: np.ndarray
    accepted_nkl: np.ndarray
    proposed_nkl: np.ndarray
    timestep_fs: float
    platform: str
    metadata: dict[str, Any]
    checkpoint: dict[str, Any]

    @property
    def n_iterations(self) -> int:
        """Number of stored production iterations."""
        return int(self.energies.shape[0])

    @property
    def n_states(self) -> int:
        """Number of states K."""
        return len(self.states)

    def u_kln(self) -> np.ndarray:
        """Reduced potentials ordered by sampled state, pymbar style.

        Returns
        -------
        u_kln : ndarray, shape (K, K, N_iter)
            ``u_kln[k, l, n]``: the configuration sampled in state ``k`` at iteration ``n`` evaluated in state l.
        """
        n_iter = self.energies.shape[0]
        replica_of_state = np.argsort(self.replica_states, axis=1)  # (N, K): which replica sat in state k
        u_nkl = self.energies[np.arange(n_iter)[:, None], replica_of_state, :]
        return np.ascontiguousarray(np.transpose(u_nkl, (1, 2, 0)))

    def end_state_frames(self, state: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Stored configurations of an end state (0 or K-1; -1 means K-1).

        Returns
        -------
        positions : ndarray, shape (F, N, 3)
            Coordinates in nm (XTC precision, 0.001 nm).
        box : ndarray, shape (F, 3, 3) or None
            Periodic box vectors in nm (rows a, b, c); None for a non-periodic system.
        """
        positions, box, _ = self._frames(state)
        return positions, box

    def end_state_iterations(self, state: int) -> np.ndarray:
        """Production iteration index of each frame of :meth:`end_state_frames` (shape (F,))."""
        return self._frames(state)[2]

    def _frames(self, state: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        from mdtraj.formats import XTCTrajectoryFile

        n_states = self.n_states
        index = n_states - 1 if state == -1 else state
        if index not in (0, n_states - 1):
            raise InputError(f"{self.folder}: snapshots are stored for states 0 and {n_states - 1} only, not {state}")
        files = self.checkpoint["snapshots"].get(str(index), [])
        n_atoms = int(self.metadata["n_atoms"])
        xyz_all, box_all, step_all = [], [], []
        for entry in files:
            with XTCTrajectoryFile(str(self.folder / entry["file"])) as handle:
                xyz, _, step, box = handle.read()
            xyz_all.append(xyz.astype(np.float64))
            step_all.append(step.astype(np.int64))
            if box is not None:
                box_all.append(np.asarray(box, dtype=np.float64))
        positions = np.concatenate(xyz_all) if xyz_all else np.zeros((0, n_atoms, 3))
        periodic = bool(self.metadata.get("periodic"))
        box = (np.concatenate(box_all) if box_all else np.zeros((0, 3, 3))) if periodic else None
        steps = np.concatenate(step_all) if step_all else np.zeros(0, dtype=np.int64)
        return positions, box, steps


def load_samples(folder: str | os.PathLike[str]) -> SamplerData:
    """Read the stored results of a replica-exchange run up to its last checkpoint.

    Parameters
    ----------
    folder : path
        A folder written by :class:`fep.sampling.hrex.HREXSampler`.

    Returns
    -------
    SamplerData
        Energies, replica states, swap statistics and access to the end-state snapshots.

    Raises
    ------
    InputError
        The folder holds no sampler run or no checkpoint yet.
    """
    store = SamplerStore(folder)
    metadata = store.read_metadata()
    if metadata is None:
        raise InputError(f"{folder}: no replica-exchange run here (sampler.json missing)")
    checkpoint = store.read_checkpoint()
    if checkpoint is None:
        raise InputError(f"{folder}: the run has not written its first checkpoint yet (still equilibrating?)")
    n_states = int(metadata["n_states"])
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("iterations", "energies", "replica_states", "accepted", "proposed")
    }
    expected = 0
    for chunk in sorted(checkpoint["chunks"], key=lambda c: c["start"]):
        if chunk["start"] != expected:
            raise InputError(f"{folder}: iterations {expected}..{chunk['start']} are missing from the stored chunks")
        data = read_npz(store.folder / chunk["file"])
        for key in parts:
            parts[key].append(data[key])
        expected = chunk["stop"]
    if expected != checkpoint["iteration"]:
        raise InputError(f"{folder}: chunks end at iteration {expected}, checkpoint says {checkpoint['iteration']}")

    def cat(key: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        return np.concatenate(parts[key]) if parts[key] else np.zeros((0, *shape), dtype=dtype)

    accepted_nkl = cat("accepted", (n_states, n_states), np.int32).astype(np.int64)
    proposed_nkl = cat("proposed", (n_states, n_states), np.int32).astype(np.int64)
    return SamplerData(
        folder=store.folder,
        states=tuple(dict(s) for s in metadata["states"]),
        temperature_k=float(metadata["temperature_k"]),
        pressure_bar=metadata["pressure_bar"],
        iterations=cat("iterations", (), np.int64),
        energies=cat("energies", (n_states, n_states), np.float64),
        replica_states=cat("replica_states", (n_states,), np.int32).astype(np.int64),
        accepted=accepted_nkl.sum(axis=0),
        proposed=proposed_nkl.sum(axis=0),
        accepted_nkl=accepted_nkl,
        proposed_nkl=proposed_nkl,
        timestep_fs=float(checkpoint["timestep_fs"]),
        platform=str(checkpoint.get("platform", "")),
        metadata=metadata,
        checkpoint=checkpoint,
    )
