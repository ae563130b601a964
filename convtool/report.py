"""The ``index.html`` page ``convtool visualize -o DIR/`` writes next to its sheets.

One self-contained page: inline CSS, no scripts, nothing fetched from the
network; the sheets are referenced by relative file names, so the directory
can be moved or zipped as a whole. This module only builds the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

_CSS = """
body { background: #262626; color: #ebebeb; margin: 0 auto; max-width: 1400px;
       padding: 16px 24px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI",
       Roboto, "DejaVu Sans", sans-serif; }
h1 { font-size: 22px; margin: 4px 0 2px; }
h2 { font-size: 16px; margin: 28px 0 8px; font-weight: 600; }
a { color: #8cc4ff; text-decoration: none; }
a:hover { text-decoration: underline; }
p.meta { color: #b4b4b4; margin: 2px 0; }
table { border-collapse: collapse; margin: 12px 0; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; border-bottom: 1px solid #3c3c3c; white-space: nowrap; }
th { text-align: left; border-bottom: 2px solid #5a5a5a; }
td.r, th.r { text-align: right; }
tr.total td { border-top: 2px solid #5a5a5a; font-weight: 600; }
tbody tr:hover { background: #303030; }
img { max-width: 100%; height: auto; display: block; }
nav.top { font-size: 12px; margin-top: 4px; }
"""


@dataclass(frozen=True)
class Sheet:
    """One layer's picture on the page: its anchor, heading, file name and pixel size."""

    anchor: str
    heading: str
    file: str
    width: int
    height: int


_CLASS_COLUMNS = (("#", "right"), ("class", "right"), ("label", "left"), ("p", "right"))


def _cell(tag: str, text: str, justify: str, link: str | None = None) -> str:
    body = escape(text)
    if link:
        body = f'<a href="#{escape(link)}">{body}</a>'
    cls = ' class="r"' if justify == "right" else ""
    return f"<{tag}{cls}>{body}</{tag}>"


def _table(
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Sequence[str]],
    links: Sequence[str | None] = (),
    total: Sequence[str] | None = None,
) -> list[str]:
    """A table's lines; ``links[i]`` is the anchor row i's second cell links to."""
    aligns = [j for _, j in columns]
    head = "".join(_cell("th", name, j) for name, j in columns)
    out = [f"<table><thead><tr>{head}</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        link = links[i] if i < len(links) else None
        cells = [
            _cell("td", text, j, link if k == 1 else None)
            for k, (text, j) in enumerate(zip(row, aligns, strict=True))
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    if total is not None:
        cells = [_cell("td", text, j) for text, j in zip(total, aligns, strict=True)]
        out.append('<tr class="total">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return out


def index_html(
    title: str,
    *,
    meta: Sequence[str] = (),
    columns: Sequence[tuple[str, str]] = (),
    rows: Sequence[Sequence[str]] = (),
    row_links: Sequence[str | None] = (),
    total: Sequence[str] | None = None,
    sheets: Sequence[Sheet] = (),
    overview: str | None = None,
    classes: Sequence[tuple[str, ...]] | None = None,
    classes_title: str = "Top classes",
) -> str:
    """The page as text.

    Parameters
    ----------
    title : the net's name, as the page's heading
    meta : lines under the heading (input image, preprocessing, ...)
    columns, rows, total : the layer table (headings with ``left``/``right``
        alignment, text rows, an optional total row)
    row_links : per row, the anchor its second cell (the layer) links to, or None
    sheets : the pictures, in order, each under a heading with its anchor
    overview : file name of the one-page overview, linked from the top
    classes : optional rows of a top-k table (rank, class, label, probability)
    classes_title : its heading

    Examples
    --------
    >>> page = index_html("net", columns=[("#", "right"), ("layer", "left")], rows=[["1", "conv"]],
    ...                   row_links=["01_conv"],
    ...                   sheets=[Sheet("01_conv", "01 conv", "01_conv.png", 10, 10)])
    >>> '<a href="#01_conv">conv</a>' in page, '<img src="01_conv.png"' in page
    (True, True)
    """
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}: feature maps</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f'<h1 id="top">{escape(title)}</h1>',
    ]
    out += [f'<p class="meta">{escape(line)}</p>' for line in meta]
    if overview:
        out.append(f'<p class="meta"><a href="{quote(overview)}">{escape(overview)}</a>: '
                   "every layer on one page</p>")  # fmt: skip
    if classes:
        out.append(f"<h2>{escape(classes_title)}</h2>")
        out += _table(_CLASS_COLUMNS, classes)
    if columns:
        out.append("<h2>Layers</h2>")
        out += _table(columns, rows, row_links, total)
    for sheet in sheets:
        anchor = escape(sheet.anchor)
        out.append(f'<h2 id="{anchor}"><a href="#{anchor}">{escape(sheet.heading)}</a></h2>')
        out.append(
            f'<img src="{quote(sheet.file)}" width="{sheet.width}" height="{sheet.height}" '
            f'loading="lazy" alt="{escape(sheet.heading)}">'
        )
        out.append('<nav class="top"><a href="#top">top</a></nav>')
    out += ["</body>", "</html>", ""]
    return "\n".join(out)
