"""The printed documents' building blocks: the CJK font they embed, and a page with the few things
they draw (a title, paragraphs, tables, a bar chart), on fpdf2.

The font is a system font the install puts there (Debian's fonts-noto-cjk; README). fpdf2 embeds a
subset of it (only the glyphs a document uses, so a notice stays small) and reads CFF-flavoured
OpenType, and TrueType collections (.ttc), face by face. It is found once per process:
`VIGIL_PDF_FONT_PATH` if set (and then only that: a configured font that does not work is an error
to fix, not something to quietly replace), else fontconfig's choice for Simplified Chinese, else
known Debian paths. Every candidate is checked to have Chinese glyphs: fc-match answers with some
font even where none has them. Without one, a document request is a 503 that says what to install.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fontTools.ttLib import TTCollection, TTFont, TTLibError
from fpdf import FPDF
from fpdf.enums import WrapMode, XPos, YPos
from fpdf.fonts import FontFace

# (path, face) for each font package that carries Simplified Chinese; face None = pick by name.
KNOWN_FONTS: tuple[tuple[str, int | None], ...] = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", None),  # fonts-noto-cjk
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", None),  # fonts-noto-cjk
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", None),  # fonts-wqy-zenhei
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", None),  # fonts-wqy-microhei
    ("/usr/share/fonts/truetype/arphic/uming.ttc", None),  # fonts-arphic-uming
)
MISSING_FONT = (
    "no CJK font for PDF documents: install Debian's fonts-noto-cjk (README's install command) or"
    " set VIGIL_PDF_FONT_PATH to a TrueType/OpenType font with Chinese glyphs"
)
_PROBE = "中国监管"  # a face must have all of these to print Chinese
_FAMILY = "cjk"


class FontUnavailable(RuntimeError):
    """No usable CJK font: the reason, for the 503."""


@dataclass(frozen=True, slots=True)
class Font:
    path: str
    face: int  # the face in a collection; 0 for a single font


def _covers(font: TTFont) -> bool:
    cmap = font.getBestCmap() or {}
    return all(ord(c) in cmap for c in _PROBE)


def _cjk_face(path: str, face: int | None) -> int | None:
    """The face of `path` to print Chinese with: `face` if it has the glyphs, else (face None) the
    Simplified Chinese face of a collection, else its first face with the glyphs; None if none."""
    if not Path(path).is_file():
        return None
    try:
        if path.lower().endswith((".ttc", ".otc")):
            faces = TTCollection(path, lazy=True).fonts
        else:
            faces = [TTFont(path, lazy=True)]
        if face is not None:
            return face if face < len(faces) and _covers(faces[face]) else None
        names = [str(f["name"].getDebugName(4) or "") for f in faces]
        order = sorted(range(len(faces)), key=lambda i: (" SC" not in names[i] or "Mono" in names[i], i))
        return next((i for i in order if _covers(faces[i])), None)
    except (TTLibError, OSError, KeyError, AssertionError):  # not a font fontTools can read
        return None


def _fontconfig_choice() -> tuple[str, int] | None:
    """fontconfig's font for Simplified Chinese, where fontconfig is installed."""
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        return None
    try:
        done = subprocess.run(
            [fc_match, "--format=%{file}\t%{index}", "sans-serif:lang=zh-cn"],
            capture_output=True, text=True, timeout=5, check=True,
        )  # fmt: skip
        path, _, index = done.stdout.partition("\t")
        return (path, int(index or 0)) if path else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


@lru_cache(maxsize=4)
def find_font(configured: str | None) -> Font:
    """The CJK font to embed (FontUnavailable if there is none). Cached once found; a miss is not
    cached, so installing the package fixes a running API."""
    if configured:
        face = _cjk_face(configured, None)
        if face is None:
            raise FontUnavailable(
                f"VIGIL_PDF_FONT_PATH={configured} is not a readable font with Chinese glyphs"
            )
        return Font(configured, face)
    candidates = [c for c in [_fontconfig_choice()] if c is not None] + list(KNOWN_FONTS)
    for path, face in candidates:
        found = _cjk_face(path, face)
        if found is not None:
            return Font(path, found)
    raise FontUnavailable(MISSING_FONT)


class Document(FPDF):
    """An A4 page in the CJK font, with what the documents draw."""

    def __init__(self, font: Font, *, title: str, footer: str) -> None:
        super().__init__(format="A4")
        self.footer_text = footer
        self.set_title(title)
        self.set_creator("Vigil")
        self.set_margins(20, 20, 20)
        self.set_auto_page_break(True, margin=20)
        self.add_font(_FAMILY, fname=font.path, collection_font_number=font.face)
        self.set_font(_FAMILY, size=11)
        self.add_page()

    def footer(self) -> None:  # called by fpdf2 on each page
        self.set_y(-14)
        self.set_font(_FAMILY, size=8)
        self.cell(0, 6, f"{self.footer_text}  {self.page_no()}", align="C")

    def heading(self, text: str, size: float = 18) -> None:
        self.set_font(_FAMILY, size=size)
        self.multi_cell(0, size * 0.6, text, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(3)
        self.set_font(_FAMILY, size=11)

    def subheading(self, text: str) -> None:
        self.ln(2)
        self.set_font(_FAMILY, size=13)
        self.cell(0, 8, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(_FAMILY, size=11)

    def paragraph(self, text: str, *, align: str = "L", size: float = 11) -> None:
        self.set_font(_FAMILY, size=size)
        # CHAR: Chinese has no spaces to break at; every character is a break opportunity.
        self.multi_cell(
            0, size * 0.62, text, align=align, wrapmode=WrapMode.CHAR, new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        self.ln(1.5)

    def grid(self, header: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float]) -> None:
        """A bordered table; the header row repeats on each page it spills onto."""
        self.set_font(_FAMILY, size=9)
        # The header is shaded, not bold: the CJK font comes in one weight (a second would double
        # what each document embeds).
        shaded = FontFace(emphasis="", fill_color=(225, 230, 238))
        with self.table(
            col_widths=tuple(widths), line_height=5.5, wrapmode=WrapMode.CHAR, headings_style=shaded
        ) as table:
            for values in [header, *rows]:
                line = table.row()
                for value in values:
                    line.cell(value)
        self.set_font(_FAMILY, size=11)
        self.ln(2)

    def bar_chart(self, bars: Sequence[tuple[str, int]], *, label_width: float = 55) -> None:
        """Horizontal bars, one per (label, value), scaled to the largest, drawn with rectangles."""
        if not bars:
            return
        bar_height, gap = 5.0, 2.0
        needed = len(bars) * (bar_height + gap)
        if self.get_y() + needed > self.page_break_trigger:
            self.add_page()
        top, left = self.get_y(), self.l_margin
        span = self.w - self.l_margin - self.r_margin - label_width - 15
        largest = max(value for _, value in bars) or 1
        self.set_font(_FAMILY, size=8)
        self.set_fill_color(52, 101, 164)
        for i, (label, value) in enumerate(bars):
            y = top + i * (bar_height + gap)
            self.set_xy(left, y)
            self.cell(label_width - 2, bar_height, label[:22], align="R")
            width = span * value / largest
            if width > 0:
                self.rect(left + label_width, y, width, bar_height, style="F")
            self.set_xy(left + label_width + width + 1, y)
            self.cell(14, bar_height, str(value))
        # The value axis, so the bars read against a baseline.
        self.line(left + label_width, top - 1, left + label_width, top + needed - gap + 1)
        self.set_xy(left, top + needed + 2)
        self.set_font(_FAMILY, size=11)

    def pdf_bytes(self) -> bytes:
        return bytes(self.output())
