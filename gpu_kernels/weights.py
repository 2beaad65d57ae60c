"""Where the ANI-2x weights live: lookup, description and offline installation.

torchani 2.9 reads the ANI-2x ensemble from ``$TORCHANI_DATA_DIR/StateDicts/ani2x_state_dict.pt``
(``TORCHANI_DATA_DIR`` defaults to ``~/.local/share/Torchani``) and downloads it when it is missing. mlfep never
downloads: it looks in those places, loads the file directly, and otherwise raises :class:`ModelWeightsError`
telling the user how to install the file (``fep models install FOLDER``).

Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mlfep_core import InputError, ModelWeightsError, atomic_write_bytes

__all__ = [
    "ANI2X_FILE",
    "ModelWeightsError",
    "ani2x_weight_candidates",
    "describe_ani2x_weights",
    "find_ani2x_weights",
    "install_ani2x_weights",
    "torchani_default_data_dir",
]

#: Path of the ANI-2x state dict relative to a torchani data folder.
ANI2X_FILE = Path("StateDicts") / "ani2x_state_dict.pt"


def torchani_default_data_dir() -> Path:
    """torchani's data folder when ``TORCHANI_DATA_DIR`` is not set: ``~/.local/share/Torchani``."""
    return Path.home() / ".local" / "share" / "Torchani"


def ani2x_weight_candidates() -> list[tuple[str, Path]]:
    """The places looked at for ANI-2x weights, in order: ``[(source, path of the .pt file), ...]``.

    ``source`` is ``"TORCHANI_DATA_DIR"`` (when that variable is set) or ``"torchani default"``.
    """
    out: list[tuple[str, Path]] = []
    env = os.environ.get("TORCHANI_DATA_DIR")
    if env:
        out.append(("TORCHANI_DATA_DIR", Path(env).expanduser() / ANI2X_FILE))
    default = torchani_default_data_dir() / ANI2X_FILE
    if not any(path == default for _, path in out):
        out.append(("torchani default", default))
    return out


def find_ani2x_weights() -> Path:
    """The first existing ANI-2x weight file among :func:`ani2x_weight_candidates`.

    Raises
    ------
    ModelWeightsError
        None exists; the message names the paths and how to install the file (no download is attempted).
    """
    candidates = ani2x_weight_candidates()
    for _, path in candidates:
        if path.is_file() and path.stat().st_size > 0:
            return path
    looked = ", ".join(str(path) for _, path in candidates)
    raise ModelWeightsError(
        f"ANI-2x weights not found (looked for {looked}); copy them from a folder holding "
        f"{ANI2X_FILE} with 'fep models install FOLDER' and export TORCHANI_DATA_DIR as it says "
        "(mlfep never downloads weights)"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_ani2x_weights(checksum: bool = True) -> list[dict]:
    """One dict per looked-at location: ``source, data_dir, path, exists, size_bytes, sha256, used``.

    ``used`` is True for the file :func:`find_ani2x_weights` returns. ``sha256`` is None when the file is missing
    or ``checksum`` is False.
    """
    rows = []
    used_seen = False
    for source, path in ani2x_weight_candidates():
        exists = path.is_file() and path.stat().st_size > 0
        used = exists and not used_seen
        used_seen = used_seen or used
        rows.append(
            {
                "model": "ani2x",
                "source": source,
                "data_dir": str(path.parent.parent),
                "path": str(path),
                "exists": exists,
                "size_bytes": path.stat().st_size if exists else None,
                "sha256": _sha256(path) if exists and checksum else None,
                "used": used,
            }
        )
    return rows


def install_ani2x_weights(folder: str | os.PathLike[str], to: str | os.PathLike[str] | None = None) -> Path:
    """Copy ANI-2x weights from ``folder`` into a torchani data folder, atomically.

    Parameters
    ----------
    folder : path
        A torchani data folder (holding ``StateDicts/ani2x_state_dict.pt``), a ``StateDicts`` folder, or the
        ``.pt`` file itself.
    to : path, optional
        Destination data folder; default ``$TORCHANI_DATA_DIR`` or torchani's default data folder.

    Returns
    -------
    Path
        The installed file (``<to>/StateDicts/ani2x_state_dict.pt``).

    Raises
    ------
    InputError
        No weight file in ``folder``, or it is not a readable torch archive.
    """
    folder = Path(folder).expanduser()
    options = [folder / ANI2X_FILE, folder / ANI2X_FILE.name, folder] if folder.is_dir() else [folder]
    source = next((p for p in options if p.is_file()), None)
    if source is None:
        raise InputError(f"{folder}: no {ANI2X_FILE} (nor {ANI2X_FILE.name}) there; give the folder that holds it")
    data = source.read_bytes()
    if len(data) < 1024 or data[:2] != b"PK":
        raise InputError(f"{source}: not a torch state-dict archive (expected a zip file written by torch.save)")
    if to is None:
        env = os.environ.get("TORCHANI_DATA_DIR")
        to = Path(env).expanduser() if env else torchani_default_data_dir()
    dest = Path(to).expanduser() / ANI2X_FILE
    if dest.resolve() == source.resolve():
        return dest
    try:
        atomic_write_bytes(dest, data)
    except OSError as err:
        raise InputError(f"{dest}: cannot write the weights there ({err}); choose another folder with --to") from err
    return dest
