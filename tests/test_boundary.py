"""The boundary between the engine and the app: `bbb_core` never imports streamlit, neither when
it is imported (checked in a fresh interpreter) nor anywhere in its source (checked statically)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bbb_core"
SOURCES = sorted(PACKAGE.rglob("*.py"))

_PROBE = """
import importlib, json, pkgutil, sys
import bbb_core
failed = {}
for info in pkgutil.walk_packages(bbb_core.__path__, "bbb_core."):
    if info.name.rsplit(".", 1)[-1] == "__main__":
        continue  # running it would start the command line
    try:
        importlib.import_module(info.name)
    except ImportError as err:  # reported; a missing streamlit would show up here too
        failed[info.name] = repr(err)
leaked = sorted(m for m in sys.modules if m == "streamlit" or m.startswith("streamlit."))
print(json.dumps({"leaked": leaked, "failed": failed}))
"""


def test_importing_bbb_core_does_not_import_streamlit():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["leaked"] == [], f"bbb_core imported {report['leaked']}"
    assert not any("streamlit" in err for err in report["failed"].values()), report["failed"]


def _streamlit_imports(path: Path) -> list[str]:
    """Every `import streamlit...`, `from streamlit... import` or import_module("streamlit...")."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        found += [
            f"{path.name}:{node.lineno}: {n}" for n in names if n.split(".")[0] == "streamlit"
        ]
    return found


def test_sources_are_found():
    assert PACKAGE / "__init__.py" in SOURCES and len(SOURCES) > 5


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(PACKAGE)) for p in SOURCES])
def test_no_source_file_imports_streamlit(path):
    assert _streamlit_imports(path) == []
    # nor a line that reads like one where the parser does not look (a string for exec, say)
    assert not re.search(r"^\s*(import|from)\s+streamlit\b", path.read_text(), re.MULTILINE)


def test_the_scanner_finds_streamlit_imports(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os, streamlit as st\nfrom streamlit.runtime import x\n"
        "import importlib\nimportlib.import_module('streamlit')\n"
    )
    assert len(_streamlit_imports(bad)) == 3
