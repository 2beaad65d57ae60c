"""``fep models``: lists where ANI-2x weights are looked for; ``fep models install`` copies them atomically."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from fep.cli import main
from gpu_kernels.weights import ModelWeightsError, find_ani2x_weights

SHARED_MODELS = Path(__file__).resolve().parents[3] / "shared" / "models" / "torchani"
WEIGHTS = SHARED_MODELS / "StateDicts" / "ani2x_state_dict.pt"


@pytest.fixture
def shared_weights(monkeypatch):
    if not WEIGHTS.is_file():
        pytest.skip(f"shared ANI-2x weights not found at {WEIGHTS}")
    monkeypatch.setenv("TORCHANI_DATA_DIR", str(SHARED_MODELS))
    return WEIGHTS


def test_models_json_lists_shared_weights_as_present(shared_weights, capsys):
    assert main(["models", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["ani2x_available"] is True
    first = payload["models"][0]
    assert first["source"] == "TORCHANI_DATA_DIR" and first["path"] == str(shared_weights)
    assert first["exists"] and first["used"] and first["size_bytes"] == shared_weights.stat().st_size
    assert first["sha256"] == hashlib.sha256(shared_weights.read_bytes()).hexdigest()
    assert any(row["source"] == "torchani default" for row in payload["models"])


def test_install_copies_the_file_and_says_what_to_export(shared_weights, tmp_path, capsys):
    dest_dir = tmp_path / "torchani"
    assert main(["models", "install", str(SHARED_MODELS), "--to", str(dest_dir), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    installed = dest_dir / "StateDicts" / "ani2x_state_dict.pt"
    assert payload["installed"] == str(installed)
    assert payload["export"] == f"export TORCHANI_DATA_DIR={dest_dir}"
    assert installed.read_bytes() == shared_weights.read_bytes()
    assert not [p for p in installed.parent.iterdir() if p.name.endswith(".tmp")]  # no temp file left behind


def test_missing_weights_give_a_clear_error_without_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCHANI_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(ModelWeightsError, match="fep models install"):
        find_ani2x_weights()
    assert main(["models", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["ani2x_available"] is False and not any(row["exists"] for row in payload["models"])
    # installing from a folder without the file is an error naming that folder, exit status 2
    assert main(["models", "install", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err and "Traceback" not in err
    # a file that is not a torch archive is refused
    bad = tmp_path / "bad" / "StateDicts"
    bad.mkdir(parents=True)
    (bad / "ani2x_state_dict.pt").write_bytes(b"not a zip" * 200)
    assert main(["models", "install", str(tmp_path / "bad"), "--to", str(tmp_path / "dest")]) == 2
    assert "not a torch" in capsys.readouterr().err
    assert not (tmp_path / "dest").exists()


def test_ani_kernel_refuses_to_run_without_weights(tmp_path, monkeypatch):
    from gpu_kernels.ani import ANIBatch

    monkeypatch.setenv("TORCHANI_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(ModelWeightsError, match=str(tmp_path / "empty")):
        ANIBatch([6, 1, 1, 1, 1], device="cpu")
