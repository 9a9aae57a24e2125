"""Config and input errors exit non-zero with one line that names the problem (real subprocesses)."""

from __future__ import annotations

import json

import pytest
from cli_helpers import run_cli, run_subprocess


@pytest.mark.parametrize("argv, needle", [
    (["train", "td3-proxy-lif", "--set", "actor.Tx=3"],
     "unknown key 'actor.Tx'; known keys of 'actor': hidden, neuron, T, neuron_kwargs"),
    (["train", "td3-proxy-lif", "--set", "learning_starts=soon"],
     "learning_starts: expected an integer >= 0, got 'soon'"),
    (["train", "td3-proxy-lf"], "unknown preset 'td3-proxy-lf'; presets: quickstart, sac-ann, sac-lif"),
])
def test_config_errors_are_one_line_without_traceback(argv, needle, tmp_path) -> None:
    proc = run_subprocess(*argv, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("spikerl train: error: ")
    assert needle in proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing was written


@pytest.mark.parametrize("argv, needle", [
    (["train", "td3-ann", "--env", "Foo-v1"], "unknown MuJoCo environment 'Foo-v1'. Valid ids: Ant-v5"),
    (["train", "td3-ann", "--set", "env_kwargs.bogus=1"], "bogus"),
    (["train", "no/such/file.yaml"], "config file 'no/such/file.yaml' does not exist"),
    (["train"], "give a preset name or YAML path"),
    (["train", "td3-ann", "--set", "total_timesteps"], "override 'total_timesteps': expected key=value"),
])
def test_input_errors_in_process(argv, needle, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _out, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and needle in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("text", ["1.5", "0", "1e100", "1.5e9", "nan", "inf", "-3"])
def test_bad_step_count_is_an_argparse_error(text, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        run_cli(capsys, "train", "td3-ann", "--steps", text)
    assert info.value.code == 2
    assert f"expected a whole step count from 1 to 1000000000 (1e9), got '{text}'" in capsys.readouterr().err


def test_existing_run_dir_is_not_overwritten(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("algo: td3\n")
    code, _out, err = run_cli(capsys, "train", "td3-ann", "--run-dir", str(run_dir))
    assert code == 2 and "already holds a run; continue it with --resume" in err
    assert (run_dir / "config.yaml").read_text() == "algo: td3\n"
    # --overwrite with a bad env keeps the old run: nothing is deleted before the env and model exist
    code, _out, err = run_cli(capsys, "train", "td3-ann", "--run-dir", str(run_dir), "--overwrite", "--env", "Nope")
    assert code == 2 and (run_dir / "config.yaml").read_text() == "algo: td3\n"
    (run_dir / "stale.txt").write_text("old")
    code, _out, err = run_cli(capsys, "train", "td3-ann", "--run-dir", str(run_dir), "--overwrite", "--quiet",
                              "--env", "InvertedPendulum-v5", "--steps", "50", "--set", "learning_starts=100")
    assert code == 0, err
    assert not (run_dir / "stale.txt").exists() and "name: td3-ann" in (run_dir / "config.yaml").read_text()
    assert json.loads((run_dir / "metrics.json").read_text())["total_timesteps"] == 50


@pytest.mark.parametrize("text, value", [("20000", 20000), ("2e4", 20000), ("20k", 20000), ("1_000", 1000),
                                         ("1.5M", 1_500_000), ("1e9", 1_000_000_000)])
def test_step_counts_accept_common_spellings(text: str, value: int) -> None:
    from spikerl.cli.args import step_count

    assert step_count(text) == value
