"""The vendored lists: the import is lossless and reproducible."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.tracking.enrich import data
from proxy.tracking.enrich.sources import SourceIndex, entry_key, term_param
from proxy.tracking.enrich.update_data import (
    MATOMO_FILES,
    import_isbot,
    import_matomo,
    isbot_document,
    provenance_commit,
)

MATOMO_DIR = data.CONFIG_DIR / "matomo"


@pytest.fixture(scope="module")
def matomo() -> dict[str, Any]:
    return data.load("matomo/matomo.json")


@pytest.fixture(scope="module")
def index(matomo: dict[str, Any]) -> SourceIndex:
    return SourceIndex(matomo, data.load("referrers.json"))


@pytest.mark.parametrize("medium", list(MATOMO_FILES))
def test_json_equals_the_vendored_yaml(matomo: dict[str, Any], medium: str) -> None:
    with (MATOMO_DIR / MATOMO_FILES[medium]).open("rb") as fh:
        assert matomo[medium] == yaml.safe_load(fh)


def _yaml_entries(matomo: dict[str, Any]) -> list[tuple[str, str, str, list[str]]]:
    """(medium, name, url, params) for every url of every configuration in the lists."""
    out = []
    for medium in MATOMO_FILES:
        for name, configs in matomo[medium].items():
            if medium == "search":
                out += [(medium, name, url, c.get("params") or []) for c in configs for url in c["urls"]]
            else:
                out += [(medium, name, url, []) for url in configs]
    return out


def test_every_host_path_and_parameter_is_in_the_index(matomo: dict[str, Any], index: SourceIndex) -> None:
    compiled = index.keys()
    ours = {entry_key(h) for e in data.load("referrers.json")["sources"] for h in e.get("hosts", ())}
    entries = _yaml_entries(matomo)
    assert len(entries) > 900  # the lists, not an empty file
    missing = []
    for medium, name, url, params in entries:
        key = entry_key(url)
        source = compiled.get(key)
        # A key both lists and our file name goes to ours; a key in two lists to the
        # first list's source of the same name (ChatGPT is a chatbot and a search engine).
        if source is None or (source.name != name and key not in ours):
            missing.append((medium, name, url))
            continue
        wanted = tuple(term_param(p) for p in params)
        if not any(s.name == name and s.params == wanted for s in index.all_sources):
            missing.append((medium, name, f"params {params}"))
    assert missing == []


def test_the_vendored_copy_names_its_commit_and_licence(matomo: dict[str, Any]) -> None:
    commit = matomo["upstream"]["commit"]
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    assert provenance_commit(MATOMO_DIR) == commit
    assert "CC0" in (MATOMO_DIR / "LICENSE").read_text()
    isbot = data.load("isbot/patterns.json")
    assert isbot["upstream"]["version"].startswith("5.")
    assert "Unlicense" in (data.CONFIG_DIR / "isbot" / "LICENSE").read_text()


def test_reimport_reproduces_the_vendored_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in (*MATOMO_FILES.values(), "LICENSE", "README.md"):
        shutil.copyfile(MATOMO_DIR / name, src / name)
    commit = json.loads((MATOMO_DIR / "matomo.json").read_text())["upstream"]["commit"]
    out = import_matomo(src, commit, config_dir=tmp_path / "config")
    assert out.read_bytes() == (MATOMO_DIR / "matomo.json").read_bytes()


def test_import_refuses_a_copy_without_a_commit(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="commit"):
        import_matomo(tmp_path, None, config_dir=tmp_path / "config")


def test_isbot_patterns_are_read_from_the_package_files(tmp_path: Path) -> None:
    index_js = 'var x = 1;\n// src/patterns.json\nvar patterns_default = [\n  "bot",\n  "(?<!cam)scan"\n];\n'
    package = tmp_path / "package"
    package.mkdir()
    (package / "index.js").write_text(index_js)
    (package / "package.json").write_text('{"name": "isbot", "version": "5.9.0"}')
    (package / "LICENSE").write_text("Unlicense")
    out = import_isbot(package, config_dir=tmp_path / "config")
    doc = json.loads(out.read_text())
    assert doc["patterns"] == ["bot", "(?<!cam)scan"]
    assert doc["upstream"]["version"] == "5.9.0"
    with pytest.raises(ValueError, match="not found"):
        isbot_document("var other = [];", '{"version": "5.0.0"}')
