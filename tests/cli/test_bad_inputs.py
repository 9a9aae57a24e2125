"""Inputs that were accepted although wrong, or ended in a traceback: each is now one line naming what was wrong and
what would be right (exit code 2), and nothing is written."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from cli_helpers import ENV, run_cli, tiny

from spikerl.config import load_config

BUNDLE = Path(__file__).resolve().parents[1] / "data" / "idp-pt-lif" / "bundle"


def _one_line(capsys: pytest.CaptureFixture, *argv: str) -> str:
    """``spikerl ARGV`` in this process: asserts exit code 2 and a one-line error; returns that line."""
    try:
        code, _out, err = run_cli(capsys, *argv)
    except SystemExit as exc:  # argparse's own refusals
        code, err = exc.code, capsys.readouterr().err.splitlines()[-1] + "\n"
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("argv, needle", [
    (["train", "td3-ann", "--steps", "1e100"],
     "argument --steps: expected a whole step count from 1 to 1000000000 (1e9), got '1e100'"),
    (["train", "td3-ann", "--set", "total_timesteps=1e100"],
     "spikerl train: error: total_timesteps: expected an integer in [1, 1000000000], got '1e100'"),
    (["evaluate", str(BUNDLE.parent), "--seed", "-1"],
     "argument --seed: expected a seed, an integer from 0 to 4294967295, got '-1'"),
    (["evaluate", str(BUNDLE), "--seed", "-1"],
     "argument --seed: expected a seed, an integer from 0 to 4294967295, got '-1'"),
    (["convert", str(BUNDLE.parent), "--calib-seed", "-1"],
     "argument --calib-seed: expected a seed, an integer from 0 to 4294967295, got '-1'"),
], ids=["train-steps-1e100", "train-set-total-timesteps-1e100", "evaluate-run-seed-minus-1",
        "evaluate-bundle-seed-minus-1", "convert-calib-seed-minus-1"])
def test_out_of_range_numbers_are_refused(argv, needle, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert needle in _one_line(capsys, *argv)
    assert not (tmp_path / "runs").exists() and not (BUNDLE / "evaluation.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_device_the_machine_lacks_is_refused(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    err = _one_line(capsys, "train", "td3-ann", "--env", ENV, "--set", "device=cuda")
    assert err == ("spikerl train: error: device: 'cuda' is not available on this machine (torch finds no CUDA "
                   "device); use device=auto (a GPU where there is one, else the CPU) or device=cpu\n")
    assert not (tmp_path / "runs").exists()
    assert load_config("td3-ann", ["device=cuda"]).device == "cuda"  # a saved GPU run's config still loads


@pytest.mark.parametrize("count, device, found", [
    (1, "cuda:1", "torch finds 1 CUDA device, cuda:0"),
    (2, "cuda:7", "torch finds 2 CUDA devices, cuda:0 to cuda:1"),
], ids=["one-gpu", "two-gpus"])
def test_cuda_index_beyond_the_devices_is_refused(count, device, found, monkeypatch) -> None:
    from spikerl.config import ConfigError, check_device_available

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    for ok in ("auto", "cpu", "cuda", f"cuda:{count - 1}"):
        check_device_available(ok)
    with pytest.raises(ConfigError) as info:
        check_device_available(device)
    assert str(info.value) == (f"device: {device!r} is not available on this machine ({found}); use device=auto "
                               "(a GPU where there is one, else the CPU) or device=cpu")


def test_binary_config_file_is_one_line(tmp_path, capsys) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    err = _one_line(capsys, "train", str(path))
    assert err == f"spikerl train: error: {path}: not a YAML text file (byte 0x89 at offset 0 is not UTF-8)\n"


@pytest.mark.parametrize("command", ["train --resume", "evaluate", "export", "convert"])
def test_a_file_given_for_a_run_directory(command, tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("algo: td3\n")
    err = _one_line(capsys, *command.split(), str(run_dir / "config.yaml"))
    assert err.endswith(f"error: {run_dir / 'config.yaml'} is a file, not a run directory (a folder such as "
                        f"{run_dir})\n")


def test_bad_config_yaml_of_a_run_names_its_path_once(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("env: [Hopper\n")
    err = _one_line(capsys, "evaluate", str(run_dir))
    assert err.count(str(run_dir / "config.yaml")) == 1, err
    assert f"{run_dir / 'config.yaml'}: not valid YAML" in err


# -- trained runs ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A tiny ANN run (td3-ann) and a tiny spiking run (td3-lif), with checkpoints at steps 100 and 200."""
    from spikerl.agents.training import train_run

    root = tmp_path_factory.mktemp("runs")
    out = {}
    for preset in ("td3-ann", "td3-lif"):
        cfg = load_config(preset, tiny(False) + [f"env={ENV}", "total_timesteps=250", "checkpoint.every=100",
                                                 "eval.episodes=1"])
        train_run(cfg, root / preset)
        out[preset] = root / preset
    return out


def _writable(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.write_text("")
    except OSError:
        return False
    probe.unlink()
    return True


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` made unwritable: mode 0o555 and, where that does not stop this process (root), the immutable
    attribute (``chattr +i``); the test is skipped where neither works."""
    folder.chmod(0o555)
    immutable = False
    if _writable(folder) and shutil.which("chattr"):
        immutable = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        if _writable(folder):
            pytest.skip("cannot make a folder read-only here")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def _no_episodes(monkeypatch) -> None:
    """Evaluation functions that fail the test if called: a read-only folder is refused before any episode."""
    import spikerl.agents.deploy as deploy
    import spikerl.agents.training as training

    def played(*_args, **_kwargs):
        raise AssertionError("episodes were played before the unwritable folder was refused")

    monkeypatch.setattr(training, "evaluate_run", played)
    monkeypatch.setattr(deploy, "evaluate_bundle", played)


def test_evaluate_into_a_read_only_run(runs, tmp_path, capsys, monkeypatch) -> None:
    run_dir = Path(shutil.copytree(runs["td3-ann"], tmp_path / "run"))
    _no_episodes(monkeypatch)
    with read_only(run_dir):
        err = _one_line(capsys, "evaluate", str(run_dir), "--episodes", "1")
    assert err.startswith(f"spikerl evaluate: error: cannot write {run_dir / 'evaluation.json'}")
    hint = "; write the evaluation elsewhere with --out DIR\n"
    assert err.endswith(tuple(f": {cause}{hint}" for cause in ("Permission denied", "Operation not permitted",
                                                                 "Read-only file system")))


def test_evaluate_a_bundle_in_a_read_only_folder(tmp_path, capsys, monkeypatch) -> None:
    bundle = Path(shutil.copytree(BUNDLE, tmp_path / "bundle"))
    _no_episodes(monkeypatch)
    with read_only(bundle):
        err = _one_line(capsys, "evaluate", str(bundle), "--episodes", "1")
    assert err.startswith(f"spikerl evaluate: error: cannot write {bundle / 'evaluation.json'}")
    assert err.endswith("; write the evaluation elsewhere with --out DIR\n")


def test_evaluate_a_read_only_bundle_into_out(tmp_path, capsys) -> None:
    """--out: evaluation.json goes to a new folder; the evaluated (read-only) bundle is left as it is."""
    bundle = Path(shutil.copytree(BUNDLE, tmp_path / "bundle"))
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    out = tmp_path / "results" / "idp"
    with read_only(bundle):
        code, stdout, err = run_cli(capsys, "evaluate", str(bundle), "--episodes", "1", "--out", str(out), "--quiet")
    assert code == 0, err
    assert stdout.rstrip().endswith(f"-> {out / 'evaluation.json'}")
    assert json.loads((out / "evaluation.json").read_text())["episodes"] == 1
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before


def test_evaluate_a_run_into_out(runs, tmp_path, capsys) -> None:
    run_dir = Path(shutil.copytree(runs["td3-ann"], tmp_path / "run"))
    code, _stdout, err = run_cli(capsys, "evaluate", str(run_dir), "--episodes", "1", "--out", str(tmp_path / "ev"))
    assert code == 0, err
    assert json.loads((tmp_path / "ev" / "evaluation.json").read_text())["episodes"] == 1
    assert not (run_dir / "evaluation.json").exists()


def test_evaluate_out_that_is_a_file_is_refused(tmp_path, capsys, monkeypatch) -> None:
    _no_episodes(monkeypatch)
    (tmp_path / "taken").write_text("x")
    err = _one_line(capsys, "evaluate", str(BUNDLE), "--out", str(tmp_path / "taken"))
    assert err == f"spikerl evaluate: error: --out {tmp_path / 'taken'} is a file; give a folder for evaluation.json\n"


@pytest.mark.parametrize("argv", [["export", "{snn}", "--format", "onnx", "--out", "{ro}/policy.onnx"],
                                  ["export", "{snn}", "--format", "bundle", "--out", "{ro}/bundle"],
                                  ["convert", "{ann}", "--calib-steps", "50", "--T", "4", "--out", "{ro}/converted"]],
                         ids=["export-onnx", "export-bundle", "convert"])
def test_write_into_a_read_only_folder(argv, runs, tmp_path, capsys) -> None:
    pytest.importorskip("onnx")
    ro = tmp_path / "ro"
    ro.mkdir()
    argv = [a.format(snn=runs["td3-lif"], ann=runs["td3-ann"], ro=ro) for a in argv]
    with read_only(ro):
        err = _one_line(capsys, *argv)
    assert f"error: cannot write {ro}/" in err, err
    assert not any(ro.iterdir())


def test_convert_says_when_it_converts_a_checkpoint(runs, tmp_path, capsys) -> None:
    run_dir = Path(shutil.copytree(runs["td3-ann"], tmp_path / "run"))
    (run_dir / "model.zip").unlink()
    code, out, err = run_cli(capsys, "convert", str(run_dir), "--calib-steps", "50", "--T", "4")
    assert code == 0, err
    assert err == (f"spikerl convert: warning: {run_dir}: converting checkpoints/step_0000000200.zip (no model.zip: "
                   "the run is unfinished)\n")
    assert out.startswith(f"converted {run_dir} ")
