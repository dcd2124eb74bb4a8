"""A picture of an evaluation's best and worst images, each captioned with its score and prompt."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..result import Extreme

TILE = 128  # thumbnail side in pixels
CAPTION_LINES = 4


def extremes_grid(best: Sequence[Extreme], worst: Sequence[Extreme], tile: int = TILE) -> np.ndarray | None:
    """An RGB uint8 array (H, W, 3): the best images in the top row, the worst in the bottom row, with
    ``score · prompt`` under each. None when there is no image to show."""
    rows = [(label, r) for label, r in (("best", list(best)), ("worst", list(worst)))
            if any(e.image is not None for e in r)]
    if not rows:
        return None
    font = ImageFont.load_default()
    line_h = 11
    cap_h = line_h * CAPTION_LINES + 4
    cols = max(len(r) for _, r in rows)
    row_h = line_h + tile + cap_h + 4
    sheet = Image.new("RGB", (cols * (tile + 4) + 4, len(rows) * row_h + 4), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    chars = max(8, tile // 6)
    for r, (label, row) in enumerate(rows):
        draw.text((4, 4 + r * row_h), label, fill=(90, 90, 90), font=font)
        for c, e in enumerate(row):
            x, y = 4 + c * (tile + 4), 4 + r * row_h + line_h
            if e.image is not None:
                thumb = e.image.convert("RGB")
                thumb.thumbnail((tile, tile))
                sheet.paste(thumb, (x + (tile - thumb.width) // 2, y + (tile - thumb.height) // 2))
            lines = textwrap.wrap(f"{e.score:.4f} · {e.prompt}", chars)[:CAPTION_LINES]
            for k, line in enumerate(lines):
                draw.text((x, y + tile + 2 + k * line_h), line, fill=(0, 0, 0), font=font)
    return np.asarray(sheet)


def extremes_markdown(best: Sequence[Extreme], worst: Sequence[Extreme]) -> str:
    """A Markdown table of the best and worst images' scores and prompts (TensorBoard renders it)."""
    lines = ["| rank | score | prompt name | prompt |", "|---|---|---|---|"]
    for label, items in (("best", best), ("worst", worst)):
        for i, e in enumerate(items, 1):
            prompt = e.prompt.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {label} {i} | {e.score:.4f} | {e.name} | {prompt} |")
    return "\n".join(lines)
