"""The ``convtool`` command line: a thin Typer layer over the Python API.

Only Typer and the standard library are imported at module level; each
command imports the API (and with it numpy and Numba) when it runs, so
``convtool --help`` and ``convtool kernels`` start fast.
"""

from __future__ import annotations

import typer

from .commands import convolve, detect, kernels, pool, summary, visualize, warmup

app = typer.Typer(
    name="convtool",
    help=(
        "Image filtering and CNN building blocks on real images: convolve, pool, "
        "detect, visualize.\n\n"
        "Exit codes: 0 success, 1 some inputs failed (detect: nothing found), 2 usage error."
    ),
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"convtool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_show_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Image filtering and CNN building blocks on real images."""


for _module in (convolve, pool, kernels, detect, visualize, summary, warmup):
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="convtool")


if __name__ == "__main__":  # pragma: no cover
    main()
