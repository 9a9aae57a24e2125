"""``spikerl export --format c`` and ``spikerl evaluate C_EXPORT_DIR`` on a trained policy (tests/data fixture).

The fixture is a PT-LIF TD3 actor trained on InvertedDoublePendulum-v5 (``tests/data/idp-pt-lif/README.md``
has the command): a policy that balances, so that the int8 return check has something to lose.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli

from spikerl.runtime import load_policy

from .c_helpers import needs_cc

pytestmark = needs_cc
FIXTURE = Path(__file__).resolve().parents[1] / "data" / "idp-pt-lif" / "bundle"
#: the untrained actor of this run returned 46.5 on these seeds; the trained one balances for far longer
TRAINED_RETURN = 1000.0


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A copy of the fixture bundle (evaluate writes evaluation.json next to what it evaluates)."""
    path = tmp_path_factory.mktemp("fixture") / "bundle"
    shutil.copytree(FIXTURE, path)
    return path


def _evaluation(path: Path) -> dict:
    return json.loads((path / "evaluation.json").read_text())


def test_float_export_evaluates_like_the_bundle(bundle, tmp_path, capsys):
    out_dir = tmp_path / "c"
    code, out, err = run_cli(capsys, "export", str(bundle), "--format", "c", "--out", str(out_dir))
    assert code == 0, err
    assert f"exported c (float32) -> {out_dir} (spikerl_policy.h, spikerl_policy.c; weights" in out
    code, out, err = run_cli(capsys, "evaluate", str(out_dir), "--episodes", "3")
    assert code == 0, err
    assert "InvertedDoublePendulum-v5: mean return" in out and "C export (float32, via ctypes)" in out
    assert "energy per decision (paper figures)" in out
    code, _, err = run_cli(capsys, "evaluate", str(bundle), "--episodes", "3", "--quiet")
    assert code == 0, err
    got, ref = _evaluation(out_dir), _evaluation(bundle)
    assert ref["mean_return"] > TRAINED_RETURN
    assert got["seed"] == ref["seed"] and got["lengths"] == ref["lengths"]  # the same episodes, step for step
    np.testing.assert_allclose(got["returns"], ref["returns"], rtol=1e-9)
    for key in ("sops", "macs", "energy_nj", "firing_rate", "decisions"):
        assert got["energy"][key] == pytest.approx(ref["energy"][key], rel=1e-9), key


def test_int8_export_keeps_95_percent_of_the_float_return(bundle, tmp_path, capsys):
    out_dir = tmp_path / "c8"
    code, out, err = run_cli(capsys, "export", str(bundle), "--format", "c", "--precision", "int8",
                             "--out", str(out_dir))
    assert code == 0, err
    meta = json.loads((out_dir / "spikerl_policy.json").read_text())
    q = meta["quantization"]
    assert q["calibration_observations"] >= 2000
    assert f"{q['calibration_observations']} calibration observations: action error max" in out
    loop = q["closed_loop"]
    assert loop["episodes"] == 10 and loop["seed"] == 100  # the run's own evaluation episodes (seed 0 + 100)
    ref, got = loop["float_runtime"]["mean_return"], loop["int8_c"]["mean_return"]
    assert ref > TRAINED_RETURN
    assert got >= 0.95 * ref, (got, ref)
    assert f"closed loop over 10 episodes (seed 100): float runtime {ref:.2f}" in out
    weights = meta["flash_bytes"]["weights"]
    float_weights = 4 * sum(np.load(bundle / "weights.npz")[k].size for k in np.load(bundle / "weights.npz").files
                            if k.endswith(".weight"))
    assert weights * 4 == float_weights  # one byte per weight
    code, out, err = run_cli(capsys, "evaluate", str(out_dir), "--quiet")  # the same 10 episodes as the check
    assert code == 0, err
    assert _evaluation(out_dir)["mean_return"] == pytest.approx(got, rel=1e-12)


def test_calibration_file_and_wrong_uses_are_one_line_errors(bundle, tmp_path, capsys):
    policy = load_policy(bundle)
    calib = np.random.default_rng(0).normal(scale=0.3, size=(500, policy.obs_dim)).astype(np.float32)
    np.save(tmp_path / "calib.npy", calib)
    code, out, err = run_cli(capsys, "export", str(bundle), "--format", "c", "--precision", "int8", "--calib",
                             str(tmp_path / "calib.npy"), "--check-episodes", "0", "--out", str(tmp_path / "c8"))
    assert code == 0, err
    assert "500 calibration observations" in out and "closed loop" not in out
    np.save(tmp_path / "bad.npy", calib[:, :3])
    cases = [
        (["export", str(bundle), "--precision", "int8"], "--precision and --calib apply to --format c only"),
        (["export", str(bundle), "--format", "c", "--calib", str(tmp_path / "calib.npy")],
         "--calib calibrates the int8 export; add --precision int8"),
        (["export", str(bundle), "--format", "c", "--precision", "int8", "--calib", str(tmp_path / "bad.npy")],
         f"int8 C export: calibration observations must have shape [N, {policy.obs_dim}]"),
        (["evaluate", str(tmp_path / "c8"), "--video"], "--video is not supported for a C export"),
    ]
    for argv, message in cases:
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
    broken = tmp_path / "broken"
    shutil.copytree(tmp_path / "c8", broken)
    (broken / "spikerl_policy.c").write_text("this is not C\n")
    code, _, err = run_cli(capsys, "evaluate", str(broken))
    assert code == 2 and "failed on" in err and "spikerl_policy.c" in err and err.count("\n") == 1, err
