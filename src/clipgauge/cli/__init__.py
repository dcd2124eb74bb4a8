"""The ``clipgauge`` command: a thin layer over the Python API (built with click).

Exit statuses: 0 success (for ``score``: every row scored); 1 some rows could not be scored (all still
written); 2 a usage or configuration error, or an output that cannot be written (a full disk, a read-only or
vanished folder, permission denied, an I/O error), printed as one line (never a traceback).

Subcommands are imported only when invoked, so ``clipgauge score`` does not pay for the report's or the
tracker's imports.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import warnings

import click

from .._version import __version__
from ..errors import EngineError, LanguageWarning, PluginWarning, PrecisionWarning, UsageError

#: command name → "module:attribute" (modules relative to this package)
COMMANDS = {
    "score": "score:score",
    "prompts": "prompts:prompts",
    "compare": "compare:compare",
    "select": "select:select",
    "sweep": "sweep:sweep",
    "filter": "filter:filter_command",
    "report": "report:report",
    "track": "track:track",
    "demo": "demo:demo",
    "metrics": "metrics_cmd:metrics",
    "backbones": "backbones:backbones",
    "validate": "validate:validate",
    "classify": "classify:classify",
    "retrieve": "retrieve:retrieve",
    "distance": "distance:distance",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, target in COMMANDS.items() if self._exists(target))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None or not self._exists(target):
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(f".{module}", __name__), attr)

    @staticmethod
    def _exists(target: str) -> bool:
        return importlib.util.find_spec(f"{__name__}.{target.split(':')[0]}") is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="clipgauge")
def cli() -> None:
    """Measure how faithfully images follow their text prompts with CLIP."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``clipgauge`` console script; returns the exit status."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            code = cli.main(args=argv, prog_name="clipgauge", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        return 2
    except click.UsageError as exc:
        click.echo(f"clipgauge: error: {exc.format_message()}", err=True)
        return 2
    except UsageError as exc:
        click.echo(f"clipgauge: error: {exc.cli or exc}", err=True)
        return 2
    except EngineError as exc:  # the run stopped; its committed work is kept
        click.echo(f"clipgauge: {exc}", err=True)
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except OSError as exc:
        # last resort for a fault of a named file that no writer turned into an OutputError: one line. An OSError
        # without an error number or a file is not the environment's fault: its traceback is shown.
        if exc.errno is None or not exc.filename:
            raise
        click.echo(f"clipgauge: error: {os_error_line(exc)}", err=True)
        return 2
    except (click.Abort, KeyboardInterrupt):
        click.echo("clipgauge: interrupted", err=True)
        return 130
    return int(code or 0)


def os_error_line(exc: OSError) -> str:
    """``PATH: CAUSE`` (``PATH -> OTHER: CAUSE`` for a rename or a link) for an :class:`OSError` of a named file."""
    where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else str(exc.filename)
    return f"{where}: {os.strerror(exc.errno) if exc.errno else exc.strerror}"


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """clipgauge's own warnings as one line on stderr; others as Python prints them."""
    if issubclass(category, (PrecisionWarning, LanguageWarning, PluginWarning)):
        click.echo(f"clipgauge: warning: {message}", err=True)
    else:
        _show_warning(message, category, filename, lineno, file, line)


_show_warning = warnings.showwarning


def run() -> None:  # pragma: no cover - console-script wrapper
    from .process import exit_process, keep_freed_memory

    keep_freed_memory()
    exit_process(main())
