"""The documentation site: generated pages up to date, every page reachable, ``mkdocs build --strict`` clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]


gen_docs = load_script("gen_docs")


def test_generated_files_are_up_to_date(tmp_path: Path) -> None:
    assert gen_docs.main(["--out", str(tmp_path)]) == 0
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.md"))
    assert gen_docs.CONFIG_PAGE in written and gen_docs.CLI_PAGE in written and "benchmarks/README.md" in written
    stale = [rel for rel in written if (tmp_path / rel).read_text() != (ROOT / rel).read_text()]
    assert not stale, f"out of date: {', '.join(stale)}; run python scripts/gen_docs.py and commit the result"


def test_results_block_is_filled_when_the_markers_exist() -> None:
    groups = json.loads((ROOT / "benchmarks" / "reproduce.json").read_text())["groups"]
    pt = next(g for g in groups if g["variant"] == "td3-proxy-lif")
    figure = gen_docs.mean_std(pt["final"]["mean"], pt["final"]["std"], pt["seeds"], 0)
    text = "# title\n\n<!-- results:start -->\nan old table\n<!-- results:end -->\n\nafter\n"
    filled = gen_docs.fill_blocks(text, ROOT)
    assert "an old table" not in filled and f"td3-proxy-lif {figure}" in filled
    assert filled.startswith("# title\n\n<!-- results:start -->\n| result |") and filled.endswith(
        "<!-- results:end -->\n\nafter\n")
    assert gen_docs.fill_blocks(filled, ROOT) == filled
    plain = "# a README without markers\n\nresults: none here\n"
    assert gen_docs.fill_blocks(plain, ROOT) == plain


def test_an_unknown_block_names_itself() -> None:
    with pytest.raises(SystemExit, match="page.md: gen_docs: unknown block 'reslts'"):
        gen_docs.fill_blocks("<!-- reslts:start -->\n<!-- reslts:end -->\n", ROOT, "page.md")
    with pytest.raises(SystemExit, match="no renderer for benchmarks/nothing.json"):
        gen_docs.fill_blocks("<!-- bench:nothing:start -->\n<!-- bench:nothing:end -->\n", ROOT)
    with pytest.raises(SystemExit, match="benchmarks/core_gone.json is missing"):
        gen_docs.fill_blocks("<!-- bench:core_gone:start -->\n<!-- bench:core_gone:end -->\n", ROOT)


def test_every_benchmark_is_in_the_benchmarks_index() -> None:
    index = (ROOT / "benchmarks" / "README.md").read_text()
    missing = [p.stem for p in sorted((ROOT / "benchmarks").glob("*.json"))
               if f"<!-- bench:{p.stem}:start -->" not in index]
    assert not missing, f"benchmarks/README.md has no figures block for: {', '.join(missing)}"


def test_every_command_is_described_in_the_guide() -> None:
    from spikerl.cli import COMMANDS

    guide = "\n".join(p.read_text() for p in (ROOT / "docs").rglob("*.md") if p != ROOT / gen_docs.CLI_PAGE)
    missing = [name for name in COMMANDS if f"spikerl {name}" not in guide]
    assert not missing, f"commands the docs' pages never mention: {', '.join(missing)}"


def _nav_pages(nav: list) -> list[str]:
    pages: list[str] = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_page_is_in_the_nav() -> None:
    class Loader(yaml.SafeLoader):
        """Reads mkdocs.yml, whose ``!relative`` tags only MkDocs resolves."""

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)
    nav = _nav_pages(config["nav"])
    pages = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    assert sorted(nav) == pages, f"not in the nav: {sorted(set(pages) - set(nav))}; in the nav but missing: " \
                                 f"{sorted(set(nav) - set(pages))}"


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[docs]')")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for page in ("index.html", "training/config/index.html", "benchmarks/index.html", "changelog/index.html",
                 "reference/api/agents/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    agents = (tmp_path / "site" / "reference/api/agents/index.html").read_text()
    assert "ProxyTD3" in agents and "ProxySAC" in agents
