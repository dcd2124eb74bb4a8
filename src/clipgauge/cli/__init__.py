"""The ``clipgauge`` command: a thin layer over the Python API (built with click).

Exit statuses: 0 every row scored; 1 some rows could not be scored (all still written); 2 a usage or
configuration error, printed as one line (never a traceback).
"""

from __future__ import annotations

import sys

import click

from .._version import __version__
from ..errors import UsageError
from .score import score


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="clipgauge")
def cli() -> None:
    """Measure how faithfully images follow their text prompts with CLIP."""


cli.add_command(score)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``clipgauge`` console script; returns the exit status."""
    try:
        code = cli.main(args=argv, prog_name="clipgauge", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        return 2
    except click.UsageError as exc:
        click.echo(f"clipgauge: error: {exc.format_message()}", err=True)
        return 2
    except UsageError as exc:
        click.echo(f"clipgauge: error: {exc}", err=True)
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("clipgauge: interrupted", err=True)
        return 130
    return int(code or 0)


def run() -> None:  # pragma: no cover - console-script wrapper
    sys.exit(main())
