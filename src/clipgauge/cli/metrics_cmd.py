"""``clipgauge metrics``: the metrics and model families this installation has, with needs and options."""

from __future__ import annotations

import json

import click

from ..metrics.registry import describe_metrics
from .output import stdout


def model_families() -> list[dict[str, str]]:
    """The registered model families, from the registry (entry points included): family, spec prefix, the spec's
    grammar (``usage``) and description."""
    from ..encoders import list_model_families

    return [{"family": f.family, "prefix": f.prefix or "", "usage": f.grammar, "description": f.describe}
            for f in list_model_families()]


@click.command("metrics")
@click.option("--json", "json_output", is_flag=True, help="Print the listing as JSON.")
def metrics(json_output: bool) -> None:
    """List the metrics (--metric NAME[:KEY=VALUE,...]) and model families (--model SPEC) available.

    Metrics and model loaders from installed plugins (entry-point groups clipgauge.metrics and clipgauge.models)
    are listed too.
    """
    listing = {"metrics": describe_metrics(), "models": model_families()}
    if json_output:
        click.echo(json.dumps(listing, indent=2))
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title="metrics (clipgauge score --metric NAME[:KEY=VALUE,...])", title_justify="left",
                  box=box.SIMPLE_HEAD)
    for col in ("metric", "columns", "needs", "options", "what it is"):
        table.add_column(col, overflow="fold")
    for m in listing["metrics"]:
        options = "\n".join(f"{k}: {v}" for k, v in m["options"].items()) or "-"
        table.add_row(*map(Text, (m["name"], ", ".join(m["columns"]), "\n".join(m["needs"]) or "-", options,
                                  m["summary"])))  # Text: "[openclip]" is not rich markup
    stdout.print(table)
    models = Table(title="model families (--model SPEC, or a metric's model=SPEC)", title_justify="left",
                   box=box.SIMPLE_HEAD)
    for col in ("family", "spec", "what it loads"):
        models.add_column(col, overflow="fold")
    for f in listing["models"]:
        models.add_row(*map(Text, (f["family"], f["usage"] or f["prefix"] or "-", f["description"])))
    stdout.print(models)
