"""``python -m clipgauge`` = the ``clipgauge`` command."""

from .cli import run

run()
