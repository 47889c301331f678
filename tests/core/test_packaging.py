"""The distribution: the imported packages are this repo's, and imports go one way only."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("traces", "recorder", "replayer", "analyzer", "imgtrace")
TOOLS = ("recorder", "replayer", "analyzer")


@pytest.mark.parametrize("name", PACKAGES)
def test_imported_package_is_this_repos(name: str) -> None:
    # PyPI has unrelated projects called traces, recorder, replayer and analyzer.
    module = importlib.import_module(name)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().parent == ROOT / name


def test_repo_root_is_not_on_sys_path(tmp_path: Path) -> None:
    code = (
        "import importlib.util as u;"
        "print(u.find_spec('benchmarks') is None and u.find_spec('tests') is None)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.stdout.strip() == "True", result.stderr


def _imported_top_levels(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_traces_imports_only_its_allowed_dependencies() -> None:
    third_party = _imported_top_levels("traces") - set(sys.stdlib_module_names)
    # The codecs: records (msgspec), frames (zstandard), multipart bodies (python_multipart),
    # base64 images (pybase64), and HTTP/1.1 responses for the client both tools send with
    # (httptools). No HTTP client library, no event loop library.
    allowed = {"msgspec", "zstandard", "python_multipart", "pybase64", "httptools", "traces"}
    assert third_party <= allowed, third_party


@pytest.mark.parametrize("tool", TOOLS)
def test_tools_never_import_each_other(tool: str) -> None:
    others = set(TOOLS) - {tool}
    assert not (_imported_top_levels(tool) & (others | {"imgtrace"}))


@pytest.mark.parametrize("name", PACKAGES)
def test_public_names_are_sorted_and_defined(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n)) or exported == sorted(
        exported
    )
    for attribute in exported:
        assert hasattr(module, attribute), f"{name}.{attribute} is in __all__ but not defined"


def test_command_help_is_fast_and_lists_the_subcommands() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "imgtrace", "--help"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    for command in ("show", "cat", "extract"):
        assert command in result.stdout
    heavy = {"matplotlib", "numpy", "PIL", "uvicorn", "scipy"}
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()}
    assert not (heavy & imported), f"`imgtrace --help` imports {heavy & imported}"


def test_no_test_folder_is_named_like_a_package() -> None:
    # pytest puts tests/ on sys.path; a folder there named like a package (tests/replayer/)
    # would shadow the editable install's package in spawned worker processes.
    folders = {path.name for path in (ROOT / "tests").iterdir() if path.is_dir()}
    assert not folders & set(PACKAGES)
