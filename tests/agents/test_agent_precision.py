"""``precision="bf16"`` in ProxyTD3 / ProxySAC: which networks it converts, float32 master weights and optimizer
state, weight copies that follow every update, save/load, the refusal without native bf16, and old runs."""

from __future__ import annotations

import pytest
import torch
import yaml
from spikerl.agents import ProxySAC, ProxyTD3
from spikerl.agents.training import RunError, build_model, load_run_config
from spikerl.envs import make_env

import spikerl.precision as mixed_precision
from spikerl.config import dump_config, load_config
from spikerl.precision import Bf16Linear


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU that reports native bf16 (torch computes bf16 GEMMs on any CPU, only more slowly without it)."""
    monkeypatch.setattr(mixed_precision, "cpu_flags", lambda: {"avx512_bf16"})


def tiny(**kwargs) -> dict:
    return dict(learning_starts=50, batch_size=32, buffer_size=1000, policy_kwargs=dict(net_arch=[32, 32]),
                proxy_hidden=(32, 32), seed=0, **kwargs)


def bf16_layers(module: torch.nn.Module | None) -> list[Bf16Linear]:
    return [] if module is None else [m for m in module.modules() if isinstance(m, Bf16Linear)]


@pytest.mark.parametrize(("cls", "target"), [(ProxyTD3, "proxy"), (ProxyTD3, "soft"), (ProxySAC, "proxy")])
def test_bf16_training_keeps_float32_masters_and_current_copies(bf16_cpu, cls, target, tmp_path):
    model = cls("SNNPolicy", make_env("InvertedPendulum", seed=0), target=target, precision="bf16", **tiny())
    model.learn(90)
    layers = bf16_layers(model.policy) + bf16_layers(model.proxy)
    assert layers and all(torch.equal(m.weight_bf16, m.weight.detach().to(torch.bfloat16)) for m in layers)
    assert {p.dtype for p in model.policy.parameters()} == {torch.float32}
    optimizers = [model.actor.optimizer, model.critic.optimizer] + ([model.proxy.optimizer] if model.proxy else [])
    states = [v for opt in optimizers for s in opt.state.values() for v in s.values() if torch.is_tensor(v)]
    assert states and {v.dtype for v in states} == {torch.float32}

    model.save(tmp_path / "model.zip")
    assert bf16_layers(cls.load(tmp_path / "model.zip").policy)
    assert not bf16_layers(cls.load(tmp_path / "model.zip", precision="float32").policy)


def test_bf16_parts_choose_the_networks(bf16_cpu):
    env = make_env("InvertedPendulum", seed=0)
    assert not bf16_layers(ProxyTD3("SNNPolicy", env, **tiny()).policy)  # float32 is the default
    model = ProxyTD3("SNNPolicy", env, precision="bf16", bf16_parts=["proxy", "labels"], **tiny())
    assert len(bf16_layers(model.proxy)) == 3 and not bf16_layers(model.critic)
    assert {m.modes for m in bf16_layers(model.actor)} == {frozenset({"no_grad"})}  # the label pass only
    model = ProxyTD3("SNNPolicy", env, precision="bf16", bf16_parts=["actor", "critics"], **tiny())
    assert not bf16_layers(model.proxy) and len(bf16_layers(model.critic_target)) == 6
    assert {m.modes for m in bf16_layers(model.actor)} == {frozenset({"grad"})}
    with pytest.raises(ValueError, match="bf16_parts must be a list of parts among"):
        ProxyTD3("SNNPolicy", env, precision="bf16", bf16_parts=["decoder"], **tiny())


def test_bf16_is_refused_with_one_line_on_a_cpu_without_it(monkeypatch):
    monkeypatch.setattr(mixed_precision, "cpu_flags", lambda: {"avx2"})
    env = make_env("InvertedPendulum", seed=0)
    with pytest.raises(ValueError) as err:
        ProxyTD3("SNNPolicy", env, precision="bf16", **tiny())
    assert "\n" not in str(err.value) and "avx512_bf16 nor amx_bf16" in str(err.value)
    cfg = load_config("td3-proxy-lif", ["env=InvertedPendulum-v5", "precision=bf16", "learning_starts=10"])
    with pytest.raises(RunError, match=r"cannot build ProxyTD3\(SNNPolicy\).*use precision 'float32'"):
        build_model(cfg, env)


def test_a_run_saved_before_the_precision_key_resumes_in_float32(monkeypatch, tmp_path):
    monkeypatch.setattr(mixed_precision, "default_precision", lambda: "bf16")  # should the default ever change
    assert load_config("td3-proxy-lif").precision == "bf16"
    saved = yaml.safe_load(dump_config(load_config("td3-proxy-lif")))
    del saved["precision"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    assert load_run_config(tmp_path).precision == "float32"
    saved["precision"] = "bf16"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    assert load_run_config(tmp_path).precision == "bf16"


def test_resuming_an_old_run_trains_on_in_float32(monkeypatch, bf16_cpu, tmp_path):
    """End to end: a run whose config.yaml has no precision key resumes in float32 even where bf16 would be the
    default (the resumed model, saved as model.zip, records its precision)."""
    from spikerl.agents.training import resume_run, train_run
    from stable_baselines3.common.save_util import load_from_zip_file

    overrides = ["env=InvertedPendulum-v5", "total_timesteps=150", "learning_starts=50", "batch_size=16",
                 "buffer_size=500", "actor.hidden=[16,16]", "critic.hidden=[16,16]", "proxy.hidden=[16,16]",
                 "eval.freq=1000", "eval.episodes=1", "checkpoint.every=100", "device=cpu"]
    train_run(load_config("td3-proxy-lif", overrides), tmp_path / "run")
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    del saved["precision"]
    saved["total_timesteps"] = 200
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
    (tmp_path / "run" / "metrics.json").unlink()
    monkeypatch.setattr(mixed_precision, "default_precision", lambda: "bf16")
    result = resume_run(tmp_path / "run")
    assert result.resumed_from == 100 and result.total_timesteps == 200
    data, _, _ = load_from_zip_file(tmp_path / "run" / "model.zip", load_data=True)
    assert data["precision"] == "float32"
