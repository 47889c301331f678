"""docs/cli.md is generated from the parser; this fails when it is out of date."""

from __future__ import annotations

from pathlib import Path

from imgtrace._clidoc import render_cli_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_reference_is_current() -> None:
    assert DOC.read_text() == render_cli_markdown(), (
        "docs/cli.md is stale: run `python -m imgtrace._clidoc > docs/cli.md`"
    )


def test_every_subcommand_is_documented() -> None:
    text = DOC.read_text()
    for command in ("serve", "record", "synth", "import", "export", "show", "cat", "extract",
                    "replay", "merge", "report", "compare", "demo"):  # fmt: skip
        assert f"### `imgtrace {command}`" in text
