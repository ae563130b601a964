"""Every command's --help renders cleanly at 80 and 120 columns.

Rich parses help text for markup and emoji codes (``a:b:n`` once became
``a🅱n``), and a long first paragraph used as a command's description broke
across lines in the top-level table. These tests render each help page the
way a user's terminal would and look for those accidents.
"""

from __future__ import annotations

import re
import unicodedata

import pytest
import typer.main
from rich.errors import StyleSyntaxError
from rich.style import Style
from typer.testing import CliRunner

from convtool.cli import app

WIDTHS = (80, 120)


def _command_paths() -> list[list[str]]:
    """The argv prefix of every command and subcommand, the root first."""
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(cmd, prefix: list[str]) -> None:
        paths.append(prefix)
        # Typer vendors its own click: a group is anything with subcommands
        for name, sub in sorted((getattr(cmd, "commands", None) or {}).items()):
            walk(sub, [*prefix, name])

    walk(root, [])
    return paths


PATHS = _command_paths()


def _help(path: list[str], width: int) -> str:
    runner = CliRunner()
    result = runner.invoke(
        app, [*path, "--help"], env={"COLUMNS": str(width), "TERMINAL_WIDTH": str(width)}
    )
    assert result.exit_code == 0, result.output
    return result.output


def _is_emoji(ch: str) -> bool:
    cp = ord(ch)
    if 0x2500 <= cp <= 0x259F:  # box drawing and block elements: rich's panels
        return False
    return (
        cp >= 0x1F000  # pictographs, enclosed alphanumerics (the 🅱 of :b:)
        or 0x2600 <= cp <= 0x27BF  # miscellaneous symbols, dingbats
        or cp in (0xFE0F, 0x200D)  # emoji presentation selector, zero-width joiner
        or unicodedata.category(ch) == "So"
    )


def _literal_markup(text: str) -> list[str]:
    """Bracketed words that rich would have read as a style: shown, not applied."""
    found = []
    for m in re.finditer(r"\[([^\[\]\n]{1,40})\]", text):
        inner = m.group(1).strip()
        if inner.startswith("/"):
            found.append(m.group(0))
            continue
        try:
            Style.parse(inner)
        except StyleSyntaxError:
            continue  # "[default: 0.3]", "[required]": click's own notes
        found.append(m.group(0))
    return found


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(p) for p in PATHS}
    for expected in ("convolve", "pool", "detect", "visualize", "summary", "kernels show"):
        assert expected in names


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "convtool")
def test_help_has_no_emoji_or_literal_markup(path: list[str], width: int) -> None:
    text = _help(path, width)
    emoji = sorted({ch for ch in text if _is_emoji(ch)})
    assert not emoji, f"`convtool {' '.join(path)} --help` shows emoji {emoji}"
    markup = _literal_markup(text)
    assert not markup, f"`convtool {' '.join(path)} --help` shows rich markup {markup}"


@pytest.mark.parametrize("width", WIDTHS)
def test_command_table_has_one_line_per_command(width: int) -> None:
    """Each row of the top-level Commands panel is one line: name and description."""
    text = _help([], width)
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if "Commands" in ln and ln.startswith("╭"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("╰"))
    rows = [ln.strip("│ ").rstrip() for ln in lines[start + 1 : end]]
    commands = [p[0] for p in PATHS if len(p) == 1]
    broken = [ln for ln in rows if ln.split(" ", 1)[0] not in commands]
    assert not broken, f"command descriptions wrap at {width} columns: {broken}"
    assert len(rows) == len(commands), rows
    for row in rows:
        name, _, description = row.partition(" ")
        description = description.strip()
        assert description, f"{name} has no description in `convtool --help`"
        assert description.endswith("."), f"{name}'s description is cut: {description!r}"
