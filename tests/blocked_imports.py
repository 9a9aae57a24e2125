"""Running a Python script in a child process where chosen packages (torch, stable_baselines3) cannot be imported.

A fake package of the same name, first on ``PYTHONPATH``, raises ``ImportError('<name> is blocked in this test')``
on import; :func:`import_guard` is the child's first lines, which stop it unless every block holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from cli_helpers import subprocess_env


def import_guard(*names: str) -> str:
    """Child-script lines that exit unless importing each of ``names`` fails; ``blocked[name]`` holds the error."""
    return textwrap.dedent(f"""
        blocked = {{}}
        for name in {names!r}:
            try:
                __import__(name)
            except ImportError as err:
                blocked[name] = str(err)
            else:
                raise SystemExit(f"the fake {{name}} package did not block the import")
    """)


def run_blocked(tmp_path: Path, script: str, *args: object, blocked: tuple[str, ...] = ("torch",),
                timeout: float = 300) -> tuple[subprocess.CompletedProcess, dict]:
    """Run ``script`` (with ``args``) where importing ``blocked`` raises ImportError, in ``tmp_path``; asserts it
    exits 0 and returns the process and the JSON object on its last stdout line."""
    fake = tmp_path / "fake"
    for name in blocked:
        (fake / name).mkdir(parents=True, exist_ok=True)
        (fake / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked in this test')\n")
    env = {**subprocess_env(), "MUJOCO_GL": "egl",
           "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                         timeout=timeout, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    return res, json.loads(res.stdout.strip().splitlines()[-1])
