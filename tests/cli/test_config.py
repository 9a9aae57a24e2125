"""spikerl.config: presets carry the paper's hyper-parameters; overrides, validation and round trips."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from spikerl.config import (
    AnnActorSettings,
    ConfigError,
    ProxySettings,
    SnnActorSettings,
    dump_config,
    list_presets,
    load_config,
    parse_override,
    reference_markdown,
    resolve,
)
from spikerl.config.schema import AnnTD3Config, SnnTD3Config, all_keys

REQUIRED = {"td3-proxy-lif", "td3-proxy-clif", "td3-proxy-dn", "td3-proxy-plif", "td3-lif", "td3-ann",
            "sac-proxy-lif", "sac-lif", "sac-ann"}
#: (neuron, proxy hidden, proxy lr, K) per Proxy Target preset: paper Table 5 (PLIF: the PLIF fork)
PROXY_TABLE = {"td3-proxy-lif": ("lif", [512, 512], 1e-3, 3), "td3-proxy-clif": ("clif", [800, 600], 3e-3, 3),
               "td3-proxy-dn": ("dn", [512, 512], 3e-3, 3), "td3-proxy-plif": ("plif", [512, 512], 1e-3, 3)}
#: the resolved presets (and one mode switch) as the hand-written schema resolved them before the typed models
RESOLVED = json.loads((Path(__file__).parent / "data" / "resolved_presets.json").read_text())
SWITCHES = {"td3-proxy-lif+soft+mlp": ("td3-proxy-lif", ["target=soft", "policy=MlpPolicy"])}


def _typed(value: object) -> object:
    """``value`` with the type of every number in it, so that 1 and 1.0 compare different."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


def test_all_required_presets_ship() -> None:
    assert REQUIRED <= set(list_presets())


@pytest.mark.parametrize("name", sorted(set(RESOLVED) - set(SWITCHES)))
def test_preset_resolves_to_the_same_values_as_before_the_typed_models(name: str) -> None:
    resolved = load_config(name).as_dict()
    assert list(resolved) == list(RESOLVED[name])  # the key order of config.yaml
    assert _typed(resolved) == _typed(RESOLVED[name])


@pytest.mark.parametrize("switch", sorted(SWITCHES))
def test_mode_switches_resolve_as_before(switch: str) -> None:
    preset, overrides = SWITCHES[switch]
    assert _typed(load_config(preset, overrides).as_dict()) == _typed(RESOLVED[switch])


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_preset_is_an_overlay_of_the_defaults(name: str) -> None:
    """A preset file holds only values that differ from the defaults of its algo/target/policy."""
    text = (Path(__file__).parents[2] / "configs" / f"{name}.yaml").read_text()
    raw = yaml.safe_load(text) or {}
    assert text.startswith(f"# {name}: "), "the first line names the preset and its source"
    variant = {k: raw[k] for k in ("algo", "target", "policy") if k in raw}
    defaults = resolve(variant, name=name).as_dict()
    for key, value in raw.items():
        if key in ("algo", "target", "policy"):
            continue
        if isinstance(value, dict):
            same = [k for k, v in value.items() if defaults[key].get(k) == v]
            assert not same, f"{name}: {key}.{same[0]} repeats its default"
        else:
            assert defaults[key] != value, f"{name}: {key} repeats its default"


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_preset_common_protocol(name: str) -> None:
    cfg = load_config(name)
    assert cfg.name == name
    assert (cfg.env, cfg.total_timesteps) == ("Hopper-v5", 1_000_000)
    assert (cfg.eval.freq, cfg.eval.episodes, cfg.eval.deterministic) == (5000, 10, True)
    assert (cfg.learning_rate, cfg.batch_size, cfg.buffer_size) == (3e-4, 256, 1_000_000)
    assert (cfg.learning_starts, cfg.tau, cfg.gamma) == (25_000, 0.005, 0.99)
    assert cfg.algo == name.split("-")[0]
    assert cfg.target == ("proxy" if "proxy" in name else "soft")
    assert cfg.policy == ("MlpPolicy" if name.endswith("-ann") else "SNNPolicy")
    assert (cfg.proxy is not None) == (cfg.target == "proxy")
    if cfg.policy == "SNNPolicy":
        a = cfg.actor
        assert isinstance(a, SnnActorSettings)
        assert (a.T, a.hidden, a.pop_dim, a.decoder_pop_dim, a.encoder) == (5, [256, 256], 10, 10, "pop")
    else:
        assert cfg.actor == AnnActorSettings(hidden=[256, 256])


@pytest.mark.parametrize("name", [n for n in sorted(REQUIRED) if n.startswith("td3")])
def test_td3_presets_have_td3_paper_values(name: str) -> None:
    cfg = load_config(name)
    assert (cfg.policy_delay, cfg.target_policy_noise, cfg.target_noise_clip) == (2, 0.2, 0.5)
    assert (cfg.action_noise.type, cfg.action_noise.sigma) == ("normal", 0.1)
    assert "ent_coef" not in cfg.as_dict()


@pytest.mark.parametrize("name", sorted(PROXY_TABLE))
def test_proxy_presets_follow_table5(name: str) -> None:
    neuron, hidden, lr, k = PROXY_TABLE[name]
    cfg = load_config(name)
    assert cfg.actor.neuron == neuron
    assert cfg.proxy == ProxySettings(hidden=hidden, lr=lr, iters=k)
    assert cfg.actor.plif_lr == (1e-4 if neuron == "plif" else None)


def test_sac_presets_use_sb3_defaults() -> None:
    cfg = load_config("sac-proxy-lif")
    assert (cfg.ent_coef, cfg.target_entropy, cfg.target_update_interval) == ("auto", "auto", 1)
    assert cfg.action_noise.type == "none" and "policy_delay" not in cfg.as_dict()


def test_sb3_arguments_of_each_algorithm() -> None:
    common = ["learning_rate", "buffer_size", "learning_starts", "batch_size", "tau", "gamma", "train_freq",
              "gradient_steps"]
    td3 = load_config("td3-proxy-lif", ["batch_size=64"])
    assert list(td3.sb3_kwargs()) == common + ["policy_delay", "target_policy_noise", "target_noise_clip"]
    assert td3.sb3_kwargs()["batch_size"] == 64
    sac = load_config("sac-lif")
    assert list(sac.sb3_kwargs()) == common + ["ent_coef", "target_entropy", "target_update_interval"]


def test_overrides_are_typed_yaml_values() -> None:
    cfg = load_config("td3-proxy-lif", ["learning_starts=1000", "actor.T=8", "proxy.lr=3e-3",
                                        "actor.hidden=[64, 32]", "total_timesteps=2e5", "eval.deterministic=false",
                                        "actor.neuron_kwargs.threshold=0.4", "env_kwargs.max_episode_steps=200"])
    assert cfg.learning_starts == 1000 and isinstance(cfg.learning_starts, int)
    assert cfg.actor.T == 8 and cfg.actor.hidden == [64, 32]
    assert cfg.proxy.lr == 3e-3 and cfg.total_timesteps == 200_000 and isinstance(cfg.total_timesteps, int)
    assert cfg.eval.deterministic is False
    assert cfg.actor.neuron_kwargs == {"threshold": 0.4}
    assert cfg.env_kwargs == {"max_episode_steps": 200}
    assert parse_override("a.b=") == (("a", "b"), None)


def test_sac_entropy_keys_accept_auto_and_numbers() -> None:
    cfg = load_config("sac-lif", ["ent_coef=auto_0.1", "target_entropy=-3", "gradient_steps=-1"])
    assert (cfg.ent_coef, cfg.target_entropy, cfg.gradient_steps) == ("auto_0.1", -3.0, -1)
    assert load_config("sac-lif", ["ent_coef='0.2'"]).ent_coef == 0.2


def test_switching_mode_drops_unused_file_keys() -> None:
    cfg = load_config("td3-proxy-lif", ["target=soft", "policy=MlpPolicy"])
    assert cfg.proxy is None and "proxy" not in cfg.as_dict() and cfg.actor == AnnActorSettings()
    sac = load_config("td3-proxy-lif", ["algo=sac"])
    assert "policy_delay" not in sac.as_dict() and sac.ent_coef == "auto"
    # a preset holds no action_noise block: switching algo gives that algorithm's default noise
    assert (sac.action_noise.type, sac.action_noise.sigma) == ("none", 0.0)
    td3 = load_config("sac-lif", ["algo=td3"])
    assert (td3.action_noise.type, td3.action_noise.sigma, td3.policy_delay) == ("normal", 0.1, 2)


@pytest.mark.parametrize("overrides, message", [
    (["foo=1"], "unknown key 'foo'; known top-level keys: name, algo, target"),
    (["actor.Tx=3"], "unknown key 'actor.Tx'; known keys of 'actor': hidden, neuron, T,"),
    (["proxy.size=3"], "unknown key 'proxy.size'; known keys of 'proxy': hidden, lr, iters"),
    (["batch_size=abc"], "batch_size: expected an integer >= 1, got 'abc'"),
    (["batch_size=0"], "batch_size: expected an integer >= 1, got 0"),
    (["seed=true"], "seed: expected an integer >= 0, got True"),
    (["gradient_steps=0"], "gradient_steps: expected an integer >= 1 or -1, got 0"),
    (["learning_rate=-1"], "learning_rate: expected a number > 0.0, got -1"),
    (["tau=2"], "tau: expected a number in [0.0, 1.0], got 2"),
    (["tau=.inf"], "tau: expected a number in [0.0, 1.0], got inf"),
    (["actor.neuron=lf"], "actor.neuron: expected one of if, lif, clif, plif, dn, multi-threshold, got 'lf'"),
    (["algo=ppo"], "algo: expected one of td3, sac, got 'ppo'"),
    (["actor.hidden=[0, 3]"], "actor.hidden: expected a list of positive integers"),
    (["actor.plif_lr=0"], "actor.plif_lr: expected null or a number > 0.0, got 0"),
    (["eval.deterministic=maybe"], "eval.deterministic: expected true or false, got 'maybe'"),
    (["env=5"], "env: expected a non-empty string, got 5"),
    (["ent_coef=auto"], "ent_coef: only used with algo sac (this config has algo td3)"),
    (["algo=sac", "policy_delay=3"], "policy_delay: only used with algo td3 (this config has algo sac)"),
    (["algo=sac", "ent_coef=auto_-1"], 'ent_coef: expected "auto", "auto_<initial value>" or a number > 0'),
    (["target=soft", "proxy.lr=1e-3"], "proxy.lr: only used with target proxy (this config has target soft)"),
    (["policy=MlpPolicy", "actor.T=3"], "actor.T: only used with policy SNNPolicy"),
    (["actor.neuron_kwargs.tresh=1"], "actor.neuron_kwargs: not valid for neuron 'lif'"),
    (["batch_size=512", "buffer_size=100"], "batch_size: expected at most buffer_size (100), got 512"),
    (["device=gpu"], "device: expected one of auto, cpu, cuda, cuda:N, mps, got 'gpu'"),
    (["seed"], "override 'seed': expected key=value"),
    (["seed=1", "seed.x=1"], "seed.x: seed is a value, not a block"),
    (["seed.x=1"], "seed: expected an integer >= 0, got {'x': 1}"),
    (["eval=3"], "eval: expected a block (mapping) with keys freq, episodes, deterministic, stop_at, got 3"),
    (["policy=MlpPolicy", "actor=[1]"], "actor: expected a block (mapping) with keys hidden, got [1]"),
])
def test_bad_configs_raise_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("td3-proxy-lif", overrides)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(message), text


def test_unknown_preset_and_missing_file(tmp_path) -> None:
    known = r"presets: quickstart, sac-ann, .*td3-proxy-lif"
    with pytest.raises(ConfigError, match=rf"^unknown preset 'td3-proxy-lf'; {known}"):
        load_config("td3-proxy-lf")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo: td3\n  target: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML \(line"):
        load_config(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_config(bad)


def test_resolved_config_round_trips_through_yaml(tmp_path) -> None:
    cfg = load_config("td3-proxy-plif", ["actor.T=7", "seed=3", "env=Walker2d-v5"])
    path = tmp_path / "exp.yaml"
    dump_config(cfg, path)
    again = load_config(path)
    assert again == cfg
    assert resolve(again) == cfg  # resolving is idempotent
    assert resolve(cfg.as_dict()) == cfg


def test_saved_config_of_an_older_run_loads(tmp_path) -> None:
    """A run's config.yaml as the hand-written schema wrote it (same layout, same keys) loads unchanged."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(RESOLVED["sac-lif"], sort_keys=False, default_flow_style=None))
    cfg = load_config(run / "config.yaml")
    assert _typed(cfg.as_dict()) == _typed(RESOLVED["sac-lif"])
    assert dump_config(cfg) == (run / "config.yaml").read_text()


def test_precision_float32_of_earlier_runs_is_accepted_and_ignored(tmp_path) -> None:
    """The config.yaml of every run saved while the precision key existed says ``precision: float32``: it loads as
    the same config without the key (and dumps without it), in the file and as an override."""
    saved = {}
    for key, value in RESOLVED["td3-proxy-lif"].items():
        saved[key] = value
        if key == "device":
            saved["precision"] = "float32"  # where those runs wrote it
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(saved, sort_keys=False, default_flow_style=None))
    cfg = load_config(path)
    assert "precision" not in cfg.as_dict() and not hasattr(cfg, "precision")
    assert _typed(cfg.as_dict()) == _typed(RESOLVED["td3-proxy-lif"])
    assert "precision" not in dump_config(cfg)
    assert load_config("td3-proxy-lif", ["precision=float32"]) == load_config("td3-proxy-lif")
    assert SnnTD3Config(precision="float32") == SnnTD3Config()  # the model itself, without resolve


@pytest.mark.parametrize("where", ["file", "override"])
@pytest.mark.parametrize("value", ["bf16", "fp16"])
def test_precision_other_than_float32_is_refused_in_one_line(tmp_path, where: str, value: str) -> None:
    if where == "file":
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump({**RESOLVED["td3-proxy-lif"], "precision": value}, sort_keys=False))
        source, overrides = path, []
    else:
        source, overrides = "td3-proxy-lif", [f"precision={value}"]
    with pytest.raises(ConfigError) as info:
        load_config(source, overrides)
    assert str(info.value) == (
        "precision: training runs in float32 only (bf16 was removed: its bfloat16 GEMMs gained at most 1.15x on a "
        f"train step); remove the key or set float32, got '{value}'")


def test_minimal_yaml_file_gets_defaults(tmp_path) -> None:
    path = tmp_path / "mini.yaml"
    path.write_text("algo: td3\nlearning_rate: 1e-3\nbuffer_size: 1e5\n")  # YAML 1.1 reads 1e-3 as a string
    cfg = load_config(path)
    assert cfg.name == "mini"
    assert cfg.learning_rate == 1e-3 and cfg.buffer_size == 100_000 and isinstance(cfg.buffer_size, int)
    assert cfg.target == "proxy" and cfg.proxy == ProxySettings(hidden=[512, 512], lr=1e-3, iters=3)


def test_models_are_consistent_without_resolve() -> None:
    """Built directly, a model has the defaults resolve() gives and refuses keys of another variant."""
    assert SnnTD3Config() == resolve({}) and SnnTD3Config().proxy == ProxySettings()
    assert AnnTD3Config(policy="MlpPolicy", target="soft").proxy is None
    with pytest.raises(ValueError, match="proxy: only used with target proxy"):
        SnnTD3Config(target="soft", proxy={})
    with pytest.raises(ValueError, match="actor: policy SNNPolicy takes"):
        AnnTD3Config()


@pytest.mark.parametrize("name", ["td3-proxy-lif", "td3-ann", "sac-lif", "sac-ann"])
def test_resolved_config_pickles(name: str) -> None:
    """A resolved config crosses process boundaries (multiprocessing, Ray)."""
    cfg = load_config(name)
    assert pickle.loads(pickle.dumps(cfg)) == cfg


def test_proxy_settings_validate_on_their_own() -> None:
    assert ProxySettings(iters="2").iters == 2
    with pytest.raises(ValueError, match="iters"):
        ProxySettings(iters=0)


def test_reference_lists_every_key_with_what_it_accepts() -> None:
    text = reference_markdown()
    for head, subs in all_keys().items():
        for key in [head] if subs is None else [f"{head}.{sub}" for sub in subs]:
            assert f"| `{key}` |" in text, key
    assert "| `policy_delay` | an integer >= 1 | `2` | algo td3 |" in text
    assert "| `proxy.lr` | a number > 0.0 | `0.001` | target proxy |" in text
    assert "| `actor.T` | an integer >= 1 | `5` | policy SNNPolicy |" in text
    noise = "| `action_noise.type` | one of normal, ornstein-uhlenbeck, none | sac: `none`, td3: `normal` | all |"
    assert noise in text


def test_config_package_imports_neither_sb3_nor_gymnasium() -> None:
    code = ("import sys, spikerl.config\n"
            "bad = [m for m in ('stable_baselines3', 'gymnasium') if m in sys.modules]\n"
            "assert not bad, bad\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
