"""``clipgauge compare``: are the differences between scored runs real?"""

from __future__ import annotations

import math
from pathlib import Path

import click
from rich import box
from rich.table import Table

from ..sinks import read_results
from ..stats.compare import AUTO, DEFAULT_BREAKDOWN, Comparison, PairResult, compare_runs, format_p, score_digits
from ..stats.paired import N_RESAMPLES
from ..stats.records import parse_columns, run_names
from .compare_distribution import (
    DEFAULT_DISTANCES,
    distance_table,
    diversity_table,
    pair_distances,
    parse_distances,
    run_diversity,
)
from .evalio import check_json_target, emit_json, fmt, json_option, resolve_score, say, score_options
from .output import stdout


@click.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--key", default="prompt_id", show_default=True, metavar="COLS",
              help="Comma-separated columns that pair rows across runs, e.g. prompt_id,seed.")
@click.option("--cluster", default="auto", show_default=True, metavar="COLS",
              help="Average the pairs of each value of these columns into one unit before testing ('auto': the "
                   "key's first column when the key has several, e.g. prompt_id for prompt_id,seed; 'none').")
@click.option("--by", default=",".join(DEFAULT_BREAKDOWN), show_default=True, metavar="COLS",
              help="Break the comparison down by these columns where present ('' for none).")
@score_options
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
              show_default=True, help="Significance level of the tests.")
@click.option("--power", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.8,
              show_default=True, help="Power for 'needed' (units to resolve a difference that size).")
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
              show_default=True, help="Confidence level of the intervals.")
@click.option("--resamples", type=click.IntRange(min=100), default=N_RESAMPLES, show_default=True,
              help="Bootstrap resamples and sign-flip permutations.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of bootstrap and permutations.")
@click.option("--distance", is_flag=True,
              help="Also give the distribution distance between the runs (each pair: A generated, B reference) "
                   "from their stored image embeddings (runs scored with --save-embeddings).")
@click.option("--distance-metric", "distance_metrics", default=",".join(DEFAULT_DISTANCES), show_default=True,
              metavar="NAMES", help="Distances for --distance, comma-separated (cmmd, fd, kid, vendi).")
@json_option
def compare(results: tuple[Path, ...], key: str, cluster: str, by: str, scale: str, column: str | None,
            metric: str | None, alpha: float, power: float, confidence: float, resamples: int, seed: int,
            distance: bool, distance_metrics: str, json_out: str | None) -> None:
    """Compare runs scored on the same prompts (models, checkpoints, settings).

    RESULTS are two or more files written by 'clipgauge score --out'. Per run: n, mean and CI (and, for runs
    scored with --metric diversity, the per-prompt diversity beside it). Per pair of
    runs, on rows matched by --key: the mean paired difference with a paired bootstrap CI, a sign-flip
    permutation p-value, the win rate (ties shown), the prompts needed to resolve a difference that size
    (n = ((z_{1-α/2} + z_power) σ_d / δ)²), and a sentence saying whether it is significant (Holm-adjusted
    when a table holds several comparisons). With several images per prompt (--key prompt_id,seed) the
    pairs of a prompt are averaged first, so prompts are the units. The same per category/challenge where
    those columns exist. Rows without a partner are counted and shown, never dropped silently. With
    --distance, each pair's CMMD and FD (by default) between the runs' stored embeddings, with bootstrap CIs.
    """
    check_json_target(json_out)
    wanted = parse_distances(distance_metrics) if distance else ()
    if len(results) < 2:
        raise click.UsageError("compare needs at least two results files")
    paths = list(results)
    runs = dict(zip(run_names(paths), (read_results(p) for p in paths)))
    breakdown = [c.strip() for c in by.split(",") if c.strip()]
    clusters = AUTO if cluster.strip().lower() == AUTO else (
        None if cluster.strip().lower() in ("", "none") else parse_columns(cluster))
    column, higher = resolve_score(metric, column, paths, scale)
    comparison = compare_runs(runs, key=parse_columns(key), cluster=clusters, scale=scale, column=column, by=breakdown,
                              confidence=confidence, alpha=alpha, power=power, n_resamples=resamples, seed=seed,
                              higher_is_better=higher)
    doc = comparison.to_dict()
    doc["files"] = {name: str(p) for name, p in zip(runs, paths)}
    diversity = run_diversity(runs, confidence)
    if diversity:
        doc["diversity"] = diversity
    if distance:
        doc["distances"] = pair_distances(dict(zip(runs, paths)), [(p.a, p.b) for p in comparison.pairs], wanted)
    if emit_json(doc, json_out):
        print_comparison(comparison)
        label = short_labels([r.name for r in comparison.runs])
        conf = f"{round(100 * confidence)}% CI"
        if diversity:
            stdout.print(diversity_table(diversity, label, conf))
        if distance:
            stdout.print(distance_table(doc["distances"], label, wanted))
        if json_out not in (None, "-"):
            say(f"wrote {json_out}")


def short_labels(names: list[str]) -> dict[str, str]:
    """Letters for the tables (A, B, … Z, then R27, R28, …), so that long run names do not squeeze them."""
    return {n: chr(ord("A") + i) if i < 26 else f"R{i + 1}" for i, n in enumerate(names)}


def print_comparison(c: Comparison) -> None:
    """Readable tables of a :class:`Comparison`; runs appear as letters in the pair tables."""
    digits = score_digits(c.scale, c.column)
    conf = f"{round(100 * c.confidence)}% CI"
    label = short_labels([r.name for r in c.runs])
    runs = Table(title=f"runs ({c.column or c.scale})", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("", "run", "rows", "errors", "n", "mean", conf):
        runs.add_column(col, justify="left" if col in ("", "run") else "right", no_wrap=col != "run",
                        overflow="fold")
    for r in c.runs:
        runs.add_row(label[r.name], r.name, str(r.rows), str(r.errors), str(r.n), fmt(r.mean, digits),
                     f"[{fmt(r.ci_low, digits)}, {fmt(r.ci_high, digits)}]")
    stdout.print(runs)
    per = f", averaged per {','.join(c.cluster)}" if c.cluster else ""
    stdout.print(_pairs_table(f"paired differences, matched on {','.join(c.key)}{per}", c.pairs, digits, conf,
                              c.unit, label))
    for p in c.pairs:
        say(p.sentence)
        u = p.unmatched or {}
        lost = [f"{u[k]} rows of {who} {what}" for k, who, what in (
            ("only_a", p.a, f"have no partner in {p.b}"), ("only_b", p.b, f"have no partner in {p.a}"),
            ("no_key_a", p.a, "lack a key value"), ("no_key_b", p.b, "lack a key value")) if u.get(k)]
        if p.unscored:
            lost.append(f"{p.unscored} matched pairs have an unscored row (error)")
        if lost:
            examples = u.get("examples_only_a") or u.get("examples_only_b") or []
            ex = f" (e.g. {', '.join('/'.join(k) for k in examples[:3])})" if examples else ""
            say(f"  not compared: {'; '.join(lost)}{ex}")
    for col, groups in c.breakdowns.items():
        means = Table(title=f"by {col}: runs", title_justify="left", box=box.SIMPLE_HEAD)
        means.add_column(col, overflow="fold")
        for r in c.runs:
            means.add_column(f"{label[r.name]} n", justify="right", no_wrap=True)
            means.add_column(f"{label[r.name]} mean", justify="right", no_wrap=True)
        for g in groups:
            means.add_row(g.value, *[x for r in g.runs for x in (str(r.n), fmt(r.mean, digits))])
        stdout.print(means)
        rows = [(g.value, p) for g in groups for p in g.pairs]
        stdout.print(_pairs_table(f"by {col}: paired differences", [p for _, p in rows], digits, conf, c.unit,
                                  label, groups=[v for v, _ in rows]))


def _count(x: float) -> str:
    if math.isnan(x):
        return "-"
    return "∞" if math.isinf(x) else f"{int(x):,}"


def _pairs_table(title: str, pairs: list[PairResult], digits: int, conf: str, unit: str, label: dict[str, str],
                 groups: list[str] | None = None) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, caption=None if groups is not None else
                  f"diff: A − B for pair A − B; win/tie/loss: share of {unit} where A scores higher/the same/lower;"
                  f" needed: {unit} needed to resolve a difference this size (power "
                  f"{round(100 * pairs[0].test.power) if pairs else 80}%)", caption_justify="left")
    if groups is not None:
        table.add_column("group", overflow="fold")
    table.add_column("pair", no_wrap=True)
    for col in (unit, "diff", conf, "p"):
        table.add_column(col, justify="right", no_wrap=True)
    several = len(pairs) > 1
    if several:
        table.add_column("p Holm", justify="right", no_wrap=True)
    for col in ("win/tie/loss", "needed", "sig."):
        table.add_column(col, justify="right", no_wrap=True)
    for i, p in enumerate(pairs):
        t = p.test
        wins = "-" if not t.n else f"{t.win_rate:.0%}/{t.tie_rate:.0%}/{t.loss_rate:.0%}"
        row = ([groups[i]] if groups is not None else []) + [
            f"{label[p.a]} − {label[p.b]}", str(t.n), fmt(t.mean_diff, digits, True),
            f"[{fmt(t.ci_low, digits, True)}, {fmt(t.ci_high, digits, True)}]", format_p(t.p_value)]
        row += [format_p(p.p_adjusted)] if several else []
        row += [wins, _count(t.n_required), "yes" if p.significant else "no"]
        table.add_row(*row)
    return table
