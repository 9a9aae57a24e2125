"""spikerl.config: presets carry the paper's hyper-parameters; overrides, validation and round trips."""

from __future__ import annotations

import pytest

from spikerl.config import ConfigError, dump_config, list_presets, load_config, parse_override, resolve

REQUIRED = {"td3-proxy-lif", "td3-proxy-clif", "td3-proxy-dn", "td3-proxy-plif", "td3-lif", "td3-ann",
            "sac-proxy-lif", "sac-lif", "sac-ann"}
#: (neuron, proxy hidden, proxy lr, K) per Proxy Target preset: paper Table 5 (PLIF: the PLIF fork)
PROXY_TABLE = {"td3-proxy-lif": ("lif", [512, 512], 1e-3, 3), "td3-proxy-clif": ("clif", [800, 600], 3e-3, 3),
               "td3-proxy-dn": ("dn", [512, 512], 3e-3, 3), "td3-proxy-plif": ("plif", [512, 512], 1e-3, 3)}


def test_all_required_presets_ship() -> None:
    assert REQUIRED <= set(list_presets())


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_preset_common_protocol(name: str) -> None:
    cfg = load_config(name)
    assert cfg["name"] == name
    assert (cfg["env"], cfg["total_timesteps"]) == ("Hopper-v5", 1_000_000)
    assert cfg["eval"] == {"freq": 5000, "episodes": 10, "deterministic": True}
    assert (cfg["learning_rate"], cfg["batch_size"], cfg["buffer_size"]) == (3e-4, 256, 1_000_000)
    assert (cfg["learning_starts"], cfg["tau"], cfg["gamma"]) == (25_000, 0.005, 0.99)
    assert cfg["algo"] == name.split("-")[0]
    assert cfg["target"] == ("proxy" if "proxy" in name else "soft")
    assert cfg["policy"] == ("MlpPolicy" if name.endswith("-ann") else "SNNPolicy")
    assert ("proxy" in cfg) == (cfg["target"] == "proxy")
    if cfg["policy"] == "SNNPolicy":
        a = cfg["actor"]
        assert (a["T"], a["hidden"], a["pop_dim"], a["decoder_pop_dim"], a["encoder"]) == (5, [256, 256], 10, 10,
                                                                                            "pop")
    else:
        assert cfg["actor"] == {"hidden": [256, 256]}


@pytest.mark.parametrize("name", [n for n in sorted(REQUIRED) if n.startswith("td3")])
def test_td3_presets_have_td3_paper_values(name: str) -> None:
    cfg = load_config(name)
    assert (cfg["policy_delay"], cfg["target_policy_noise"], cfg["target_noise_clip"]) == (2, 0.2, 0.5)
    assert cfg["action_noise"] == {"type": "normal", "sigma": 0.1}
    assert "ent_coef" not in cfg


@pytest.mark.parametrize("name", sorted(PROXY_TABLE))
def test_proxy_presets_follow_table5(name: str) -> None:
    neuron, hidden, lr, k = PROXY_TABLE[name]
    cfg = load_config(name)
    assert cfg["actor"]["neuron"] == neuron
    assert cfg["proxy"] == {"hidden": hidden, "lr": lr, "iters": k}
    assert cfg["actor"]["plif_lr"] == (1e-4 if neuron == "plif" else None)


def test_sac_presets_use_sb3_defaults() -> None:
    cfg = load_config("sac-proxy-lif")
    assert (cfg["ent_coef"], cfg["target_entropy"], cfg["target_update_interval"]) == ("auto", "auto", 1)
    assert cfg["action_noise"]["type"] == "none" and "policy_delay" not in cfg


def test_overrides_are_typed_yaml_values() -> None:
    cfg = load_config("td3-proxy-lif", ["learning_starts=1000", "actor.T=8", "proxy.lr=3e-3",
                                        "actor.hidden=[64, 32]", "total_timesteps=2e5", "eval.deterministic=false",
                                        "actor.neuron_kwargs.threshold=0.4", "env_kwargs.max_episode_steps=200"])
    assert cfg["learning_starts"] == 1000 and isinstance(cfg["learning_starts"], int)
    assert cfg["actor"]["T"] == 8 and cfg["actor"]["hidden"] == [64, 32]
    assert cfg["proxy"]["lr"] == 3e-3 and cfg["total_timesteps"] == 200_000
    assert cfg["eval"]["deterministic"] is False
    assert cfg["actor"]["neuron_kwargs"] == {"threshold": 0.4}
    assert cfg["env_kwargs"] == {"max_episode_steps": 200}
    assert parse_override("a.b=") == (("a", "b"), None)


def test_switching_mode_drops_unused_file_keys() -> None:
    cfg = load_config("td3-proxy-lif", ["target=soft", "policy=MlpPolicy"])
    assert "proxy" not in cfg and cfg["actor"] == {"hidden": [256, 256]}
    sac = load_config("td3-proxy-lif", ["algo=sac"])
    assert "policy_delay" not in sac and sac["ent_coef"] == "auto"


@pytest.mark.parametrize("overrides, message", [
    (["foo=1"], "unknown key 'foo'; known top-level keys: name, algo, target"),
    (["actor.Tx=3"], "unknown key 'actor.Tx'; known keys of 'actor': hidden, neuron, T,"),
    (["proxy.size=3"], "unknown key 'proxy.size'; known keys of 'proxy': hidden, lr, iters"),
    (["batch_size=abc"], "batch_size: expected an integer >= 1, got 'abc'"),
    (["batch_size=0"], "batch_size: expected an integer >= 1, got 0"),
    (["learning_rate=-1"], "learning_rate: expected a number > 0.0, got -1"),
    (["tau=2"], "tau: expected a number in [0.0, 1.0], got 2"),
    (["actor.neuron=lf"], "actor.neuron: expected one of if, lif, clif, plif, dn, multi-threshold, got 'lf'"),
    (["algo=ppo"], "algo: expected one of td3, sac, got 'ppo'"),
    (["actor.hidden=[0, 3]"], "actor.hidden: expected a list of positive integers"),
    (["eval.deterministic=maybe"], "eval.deterministic: expected true or false, got 'maybe'"),
    (["ent_coef=auto"], "ent_coef: only used with algo sac (this config has algo td3)"),
    (["target=soft", "proxy.lr=1e-3"], "proxy.lr: only used with target proxy (this config has target soft)"),
    (["policy=MlpPolicy", "actor.T=3"], "actor.T: only used with policy SNNPolicy"),
    (["actor.neuron_kwargs.tresh=1"], "actor.neuron_kwargs: not valid for neuron 'lif'"),
    (["batch_size=512", "buffer_size=100"], "batch_size: expected at most buffer_size (100), got 512"),
    (["device=gpu"], "device: expected one of auto, cpu, cuda, cuda:N, mps, got 'gpu'"),
    (["seed"], "override 'seed': expected key=value"),
    (["eval=3"], "eval: expected a block (mapping) with keys freq, episodes, deterministic, got 3"),
])
def test_bad_configs_raise_one_line(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("td3-proxy-lif", overrides)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(message), text


def test_unknown_preset_and_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^unknown preset 'td3-proxy-lf'; presets: sac-ann, .*td3-proxy-lif"):
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


def test_minimal_yaml_file_gets_defaults(tmp_path) -> None:
    path = tmp_path / "mini.yaml"
    path.write_text("algo: td3\nlearning_rate: 1e-3\nbuffer_size: 1e5\n")  # YAML 1.1 reads 1e-3 as a string
    cfg = load_config(path)
    assert cfg["name"] == "mini"
    assert cfg["learning_rate"] == 1e-3 and cfg["buffer_size"] == 100_000
    assert cfg["target"] == "proxy" and cfg["proxy"] == {"hidden": [512, 512], "lr": 1e-3, "iters": 3}
