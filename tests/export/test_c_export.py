"""The float32 C export against the bundle runtime, built with the system C compiler and called through ctypes.

The C code does the runtime's float32 operations in the runtime's order (bias first, then the input events
in ascending order; the same neuron updates), so the spike counts are identical and the actions equal up to
the last bit of ``tanhf``/``expf`` on every input here, not only on inputs away from a threshold.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from blocked_imports import import_guard, run_blocked
from conversion.runtime_checks import control_mlp, control_states

from spikerl.conversion import ConversionSpec, convert
from spikerl.conversion.saved import converted_policy_spec
from spikerl.export import export_policy, policy_spec
from spikerl.export.c_export import write_c
from spikerl.runtime import load_policy, read_bundle
from spikerl.runtime.c_policy import CompilerError, find_compiler, load_c_policy

from .c_helpers import RawC, load_strict, needs_cc, object_symbols
from .helpers import ACT_DIM, NEURON_RESETS, OBS_DIM, ids, make_actor, observations

pytestmark = needs_cc
ACTION_SPACE = {"shape": [ACT_DIM], "low": [-1.0, -0.4, 0.0], "high": [1.0, 0.4, 3.0]}
ROOT = Path(__file__).resolve().parents[2]


def _export(actor_or_spec, tmp: Path, name: str, **bundle_kwargs) -> tuple[Path, Path]:
    bundle = export_policy(actor_or_spec, tmp / f"{name}-bundle", "bundle", **bundle_kwargs)
    spec, manifest = read_bundle(bundle)
    return bundle, write_c(spec, tmp / f"{name}-c", manifest=manifest)


def _assert_same(runtime, c_policy, obs: np.ndarray) -> dict[str, np.ndarray]:
    a_rt, n_rt = runtime.act_and_count(obs)
    a_c, n_c = c_policy.act_and_count(obs)
    assert list(n_c) == list(n_rt)
    for name in n_rt:
        np.testing.assert_array_equal(n_c[name], n_rt[name], err_msg=name)
    assert a_c.dtype == np.float32 and a_c.shape == a_rt.shape
    np.testing.assert_allclose(a_c, a_rt, rtol=0, atol=1e-5)
    return n_rt


@pytest.mark.parametrize("encoder", ["pop", "direct"])
@pytest.mark.parametrize("cfg", NEURON_RESETS, ids=ids)
def test_float_c_equals_the_runtime_for_every_neuron_and_encoder(tmp_path, cfg, encoder):
    actor = make_actor(*cfg, encoder=encoder, dtype=torch.float32)
    bundle, c_dir = _export(actor, tmp_path, "p", action_space=ACTION_SPACE)
    runtime, c_policy = load_policy(bundle), load_strict(c_dir)
    obs = observations(np.float32, n=64)
    counts = _assert_same(runtime, c_policy, obs)
    assert all(c.mean() / actor.T > 0.05 for name, c in counts.items()), "some layer is silent"
    assert np.abs(runtime.act(obs, normalized=True)).max() > 0.05
    np.testing.assert_array_equal(c_policy.act(obs[3]), c_policy.act(obs)[3])  # one observation = one batch row


def test_float64_bundle_runs_in_float32_like_the_runtime_in_float32(tmp_path):
    bundle, c_dir = _export(make_actor("clif", "soft"), tmp_path, "f64")
    assert read_bundle(bundle)[0].dtype == np.float64
    _assert_same(load_policy(bundle, dtype=np.float32), load_strict(c_dir), observations(np.float32, n=32))


def _converted(method: str, neuron: str | None, carry: str | None, T: int):
    mlp = control_mlp(torch.float32)
    kwargs = {"neuron": neuron} if neuron else {}
    spec = ConversionSpec(T=T, method=method, carry=carry, alpha=0.5, **kwargs)
    return converted_policy_spec(convert(mlp, spec, calib_data=control_states(400, 0, torch.float32)), mlp)


CONVERTED = [("max", None, None, 8), ("max", None, "crpi", 8), ("opi", None, "crpi", 16),
             ("dcgs", "mth-diff", None, 8), ("dcgs", "mth-diff", "crpi", 8), ("dcgs", "if-diff", "crpi", 16)]


@pytest.mark.parametrize("method,neuron,carry,T", CONVERTED, ids=[ids(c) for c in CONVERTED])
def test_converted_policies_decision_after_decision_with_the_carry(tmp_path, method, neuron, carry, T):
    spec = _converted(method, neuron, carry, T)
    bundle, c_dir = _export(spec, tmp_path, "conv")
    runtime, c_policy = load_policy(bundle, dtype=np.float32), load_strict(c_dir)
    assert c_policy.stateful == runtime.stateful == (carry == "crpi")
    assert spec.layers[0].neuron == ("diff-conv" if method == "dcgs" else "if-conv")
    spikes = 0.0
    for k in range(4):  # consecutive decisions: both advance their carry
        obs = (control_states(8, 10 + k) * 1.3).numpy().astype(np.float32)
        spikes += sum(c.sum() for c in _assert_same(runtime, c_policy, obs).values())
    assert spikes > 0
    if carry:  # reset(mask): only row 1 starts over, on both sides
        mask = np.array([False, True] + [False] * 6)
        runtime.reset(mask)
        c_policy.reset(mask)
        _assert_same(runtime, c_policy, obs)
        fresh = load_strict(c_dir)
        assert np.abs(fresh.act(obs)[0] - c_policy.act(obs)[0]).max() > 0  # the carry changes the decision


def test_wrong_size_and_nan_give_one_clear_line(tmp_path):
    _, c_dir = _export(make_actor("lif", "hard", dtype=torch.float32), tmp_path, "bad")
    policy = load_c_policy(c_dir)
    with pytest.raises(ValueError, match=re.escape(f"expected an observation of shape [{OBS_DIM}] or a batch "
                                                   f"[B, {OBS_DIM}], got shape (4,)")):
        policy.act(np.zeros(4))
    obs = observations(np.float32, n=3)
    obs[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"^observation entry at index \(1, 2\) is not finite \(nan\)") as err:
        policy.act(obs)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"index 4 is not finite \(inf\)"):
        policy.act(np.array([0, 0, 0, 0, np.inf]))


def test_c_api_answers_nan_and_wrong_size_with_the_neutral_action_and_keeps_the_state(tmp_path):
    spec = _converted("max", None, "crpi", 8)  # a carry policy: the state must survive a bad observation
    _, c_dir = _export(spec, tmp_path, "api", action_space={"shape": [3], "low": [-2.0, 0.0, -1.0],
                                                             "high": [2.0, 1.0, 3.0]})
    raw = RawC(c_dir, 6, 3)
    obs = (control_states(3, 1) * 1.3).numpy().astype(np.float32)
    first = raw.act(obs[0])
    state = raw.state.copy()
    bad = obs[1].copy()
    bad[4] = np.nan
    neutral = np.array([0.0, 0.5, 1.0], dtype=np.float32)  # a = 0: the middle of each action range
    np.testing.assert_array_equal(raw.act(bad), neutral)
    np.testing.assert_array_equal(raw.state, state)
    rc, out = raw.checked(bad, 6)
    assert rc == 1 + 4
    np.testing.assert_array_equal(out, neutral)
    rc, out = raw.checked(obs[1], 5)
    assert rc == -1
    np.testing.assert_array_equal(out, neutral)
    np.testing.assert_array_equal(raw.state, state)
    rc, good = raw.checked(obs[1], 6)
    assert rc == 0 and np.all(np.isfinite(good)) and not np.array_equal(raw.state, state)
    raw.reset()
    np.testing.assert_array_equal(raw.act(obs[0]), first)  # after a reset the first decision repeats


def test_device_object_uses_no_libc_beyond_math_and_no_mutable_globals(tmp_path):
    _, c_dir = _export(_converted("dcgs", "mth-diff", "crpi", 8), tmp_path, "diff")
    undefined, kinds = object_symbols(c_dir, tmp_path)
    assert undefined <= {"tanhf", "expf", "fabsf", "floorf"}, undefined
    assert not kinds & {"D", "d", "B", "b", "C"}, kinds  # weights are const (read-only), no static state
    for name in ("spikerl_policy.h", "spikerl_policy.c"):
        text = (c_dir / name).read_text()
        assert "malloc" not in text and "#include <stdio.h>" not in text and "#include <stdlib.h>" not in text


def test_docs_example_builds_with_cc_and_acts_like_the_runtime(tmp_path):
    doc = (ROOT / "docs" / "deploy" / "c.md").read_text()
    main_c = re.search(r"```c\n(.*?)```", doc, re.S).group(1)  # the first C block: the minimal main.c
    actor = make_actor("lif", "soft", dtype=torch.float32)
    bundle, c_dir = _export(actor, tmp_path, "doc", action_space=ACTION_SPACE)
    (c_dir / "main.c").write_text(main_c)
    exe = c_dir / "policy"
    subprocess.run([find_compiler(), "main.c", "spikerl_policy.c", "-lm", "-o", str(exe)], cwd=c_dir, check=True,
                   capture_output=True, text=True)
    obs = observations(np.float32, n=2)
    res = subprocess.run([str(exe), *[repr(float(v)) for v in obs[0]]], capture_output=True, text=True, check=True)
    printed = np.array([float(v) for v in res.stdout.split()], dtype=np.float32)
    np.testing.assert_allclose(printed, load_policy(bundle).act(obs[0]), rtol=0, atol=1e-5)


def test_ram_and_flash_figures(tmp_path):
    _, c_dir = _export(make_actor("lif", "hard", dtype=torch.float32), tmp_path, "size")
    policy = load_c_policy(c_dir)
    spec = policy_spec(make_actor("lif", "hard", dtype=torch.float32))
    weights = sum(layer.weight.size for layer in spec.layers) + spec.decoder_weight.size
    assert policy.meta["flash_bytes"]["weights"] == 4 * weights
    n_counts = sum(policy.meta["counts"]["sizes"])
    assert policy.ram_bytes == policy.state_bytes - 4 * n_counts  # the host build only adds the counts
    assert policy.ram_bytes > 4 * sum(layer.n_out for layer in spec.layers)  # at least one membrane per neuron


def test_unsupported_and_missing_compiler_are_one_line_errors(tmp_path, monkeypatch):
    spec = policy_spec(make_actor("lif", "hard", dtype=torch.float32))
    spec.layers[0].neuron = "adex"
    with pytest.raises(ValueError, match="unknown neuron 'adex'"):
        write_c(spec, tmp_path / "x")
    with pytest.raises(ValueError, match="unknown C precision 'int4'; choose one of float32, int8"):
        write_c(policy_spec(make_actor()), tmp_path / "y", "int4")
    with pytest.raises(ValueError, match="is not a spikerl C export"):
        load_c_policy(tmp_path)
    _, c_dir = _export(make_actor("lif", "hard", dtype=torch.float32), tmp_path, "nocc")
    monkeypatch.setattr("spikerl.runtime.c_policy.find_compiler", lambda cc=None: None)
    with pytest.raises(CompilerError, match=r"^no C compiler found \(tried \$CC, cc, gcc, clang\)"):
        load_c_policy(c_dir)


CHILD = import_guard("torch") + """
import json, sys
import numpy as np
from spikerl.runtime.c_policy import load_c_policy
policy = load_c_policy(sys.argv[1])
actions, counts = policy.act_and_count(np.load(sys.argv[2]))
bad = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print(json.dumps({"actions": actions.tolist(), "torch_modules": bad}))
"""


def test_the_loader_runs_where_torch_cannot_be_imported(tmp_path):
    bundle, c_dir = _export(make_actor("lif", "soft", dtype=torch.float32), tmp_path, "nt")
    obs = observations(np.float32, n=8)
    np.save(tmp_path / "obs.npy", obs)
    _, out = run_blocked(tmp_path, CHILD, c_dir, tmp_path / "obs.npy")
    assert out["torch_modules"] == []
    np.testing.assert_allclose(np.array(out["actions"]), load_policy(bundle).act(obs), rtol=0, atol=1e-5)
