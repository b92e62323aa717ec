"""Contact sheets: labelled rows of video frames side by side in one PNG (`pvdm demo`).

One look should show what each stage does, so every row carries a label on the left, the
columns are numbered by frame, and frames that a model generated after real or earlier
frames are underlined in orange, with a bar where the generated part begins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pvdm_core.base.atomic import atomic_path

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (110, 110, 110)
GENERATED = (235, 120, 20)  # orange: frames the model produced after given ones
LABEL_WIDTH = 230
GAP = 2  # pixels between frames
MARK = 6  # height of the "generated" underline and width of the split bar
GROUP_GAP = 10  # extra space before a row that starts a new group


@dataclass
class SheetRow:
    label: str  # left-hand text; a second line (after "\n") is drawn smaller
    frames: np.ndarray  # (T, H, W, 3) uint8
    generated_from: int | None = None  # frames from this index on follow given ones (underlined)
    new_group: bool = False  # leave extra space above this row


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # scalable font, Pillow >= 10.1
    except TypeError:
        return ImageFont.load_default()


def render_contact_sheet(rows: list[SheetRow], title: str, subtitle: str = "", every: int = 2,
                         scale: int = 3, columns: list[str] | None = None) -> Image.Image:
    """Frames 0, every, 2*every, ... of each row, nearest-neighbour upscaled by `scale`; the title
    and a smaller subtitle line on top; `columns` names the columns (default t=0, t=every, ...),
    e.g. when a row's "frames" are one frame of each of several videos."""
    if not rows:
        raise ValueError("a contact sheet needs at least one row")
    h, w = rows[0].frames.shape[1:3]
    cell_w, cell_h = w * scale + GAP, h * scale
    n_columns = max(-(-len(r.frames) // every) for r in rows)
    headers = columns or [f"t={c * every}" for c in range(n_columns)]
    title_font, label_font, small_font = _font(18), _font(14), _font(12)
    top = 34 + (18 if subtitle else 0) + 18  # title, subtitle, then the frame-number header
    row_h = cell_h + MARK + 6
    height = top + sum(row_h + (GROUP_GAP if r.new_group else 0) for r in rows) + 6
    sheet = Image.new("RGB", (LABEL_WIDTH + n_columns * cell_w + 6, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((8, 8), title, fill=INK, font=title_font)
    if subtitle:
        draw.text((8, 32), subtitle, fill=MUTED, font=label_font)
    for c, header in enumerate(headers[:n_columns]):
        draw.text((LABEL_WIDTH + c * cell_w + 2, top - 16), header, fill=MUTED, font=small_font)

    y = top
    for row in rows:
        y += GROUP_GAP if row.new_group else 0
        first, *rest = row.label.split("\n")
        draw.text((8, y + 4), first, fill=INK, font=label_font)
        for k, line in enumerate(rest):
            draw.text((8, y + 24 + 16 * k), line, fill=MUTED, font=small_font)
        for c, t in enumerate(range(0, len(row.frames), every)):
            x = LABEL_WIDTH + c * cell_w
            frame = Image.fromarray(np.ascontiguousarray(row.frames[t])).resize((w * scale, h * scale), Image.NEAREST)
            sheet.paste(frame, (x, y))
            if row.generated_from is not None and t >= row.generated_from:
                draw.rectangle((x, y + cell_h + 1, x + w * scale - 1, y + cell_h + MARK - 2), fill=GENERATED)
                if t - every < row.generated_from:  # first generated column: a bar on its left edge
                    draw.rectangle((x - GAP - 1, y - 2, x - 1, y + cell_h + MARK - 2), fill=GENERATED)
        y += row_h
    return sheet


def write_contact_sheet(path: str | Path, rows: list[SheetRow], title: str, subtitle: str = "", every: int = 2,
                        scale: int = 3, columns: list[str] | None = None) -> Path:
    """Render and write the PNG atomically; returns its path."""
    image = render_contact_sheet(rows, title, subtitle, every, scale, columns)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)
    return Path(path)
