"""Placeholder: the `detect` command is being built."""

import typer


def register(app: typer.Typer) -> None:
    pass
