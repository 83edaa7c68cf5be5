"""Typer's bundled click, under one name for type annotations.

Typer >= 0.20 vendors click as ``typer._click``; older releases depend on ``click``.
"""

try:
    from typer import _click as click
except ImportError:  # pragma: no cover - older Typer
    import click  # type: ignore[no-redef]

Context = click.Context
Command = click.Command
