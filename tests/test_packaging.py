"""Packaging and layering: the wheel installs spikerl, spikerl.agents, spikerl.envs and spikerl.configs;
the core never imports Stable-Baselines3 or Gymnasium; the console command answers."""

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    res = _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)])
    assert res.returncode == 0, res.stderr[-3000:]
    (whl,) = out.glob("spikerl-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_installs_into_fresh_venv_and_imports(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # dependencies (torch, numpy, ...) come from the test environment's site-packages via a .pth line;
    # spikerl itself only from the wheel (installed with --no-deps into the fresh venv)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    res = _run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)])
    assert res.returncode == 0, res.stderr[-3000:]
    code = (
        "import spikerl, spikerl.agents, spikerl.envs, spikerl.configs, importlib.resources as r\n"
        "assert '/venv/' in spikerl.__file__, spikerl.__file__\n"
        "names = sorted(p.name for p in r.files('spikerl.configs').iterdir() if p.name.endswith('.yaml'))\n"
        "assert 'td3-proxy-lif.yaml' in names, names\n"
        "text = r.files('spikerl.configs').joinpath('td3-proxy-lif.yaml').read_text()\n"
        "assert 'td3' in text\n"
        "print(spikerl.__version__, len(names))\n"
    )
    res = _run([str(py), "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
    assert res.returncode == 0, res.stderr[-3000:]
    import spikerl

    assert res.stdout.split()[0] == spikerl.__version__
    # no generic top-level names leak into site-packages
    assert not (site / "agents").exists() and not (site / "envs").exists() and not (site / "configs").exists()


def test_core_imports_neither_sb3_nor_gymnasium():
    code = (
        "import sys, spikerl, spikerl.neurons, spikerl.coding, spikerl.networks, spikerl.kernels\n"
        "import spikerl.conversion\n"
        "bad = [m for m in ('stable_baselines3', 'gymnasium') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    res = _run([sys.executable, "-c", code])
    assert res.returncode == 0, res.stderr[-3000:]


def test_console_command_help_and_version():
    exe = Path(sys.executable).with_name("spikerl")
    res = _run([str(exe), "--version"])
    assert res.returncode == 0 and res.stdout.strip().startswith("spikerl ")
    res = _run([str(exe), "--help"])
    assert res.returncode == 0 and "COMMAND" in res.stdout and "demo" in res.stdout
