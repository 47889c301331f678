"""The offline HTML report: one self-contained file, pictures to open in a folder beside it.

Every recorded string (prompts come from production traffic) goes through `html.escape`, and a
Content-Security-Policy allows only the report's own script (by its hash), so even text that
slipped through could not run. Recorded text is also isolated (`<bdi>`) and its control and
bidirectional formatting characters are shown as `\u202e`-style escapes: a right-to-left
override in a prompt or filename can neither reorder the page ("txt.exe" shown as "exe.txt")
nor hide itself.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path

from traces import UsageError, __version__

from ._htmlassets import CSS, JS
from ._images.records import Cell, PairResult, Rendered
from ._images.report import VERDICTS, ImageReport, format_psnr
from ._table import Table

__all__ = ["assets_dir_for", "write_html_report"]

_CELLS = (("input0", "input"), ("a", "A"), ("b", "B"), ("noise", "A′"), ("mask", "mask"),
          ("heatmap", "heatmap"))  # fmt: skip
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(JS.encode()).digest()).decode()
_CSP = (
    "default-src 'none'; img-src data: file: 'self'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{_SCRIPT_HASH}'"
)


# C0/C1 controls (but tab and newline), and the invisible formatting characters that reorder
# or hide text: bidi marks, embeddings, overrides and isolates, zero-width characters, BOM.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


def _escape_code(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _e(text: object) -> str:
    """Text for an attribute or our own labels: escaped, invisible characters as escapes."""
    return _INVISIBLE.sub(_escape_code, html.escape(str(text), quote=True))


def _t(text: object) -> str:
    """Recorded text as element content: isolated, invisible characters shown in their style."""
    escaped = html.escape(str(text), quote=True)
    shown = _INVISIBLE.sub(lambda m: f'<span class="ctl">{_escape_code(m)}</span>', escaped)
    return f"<bdi>{shown}</bdi>"


def assets_dir_for(report: Path) -> Path:
    """The folder of full-size pictures for a report: `report.html` -> `report_files/`."""
    return report.with_name(report.stem + "_files")


def write_html_report(
    path: Path,
    *,
    title: str,
    summary: list[str],
    tables: list[Table],
    plots: list[tuple[str, bytes]],
    images: ImageReport | Sequence[ImageReport] | None,
    force: bool,
) -> None:
    """Write the report; refuses an existing file unless `force`. Plots are (title, PNG bytes).

    `images` holds one image comparison per candidate; each gets its part of the Images section,
    and its tables are kept out of the Latency section."""
    if path.exists() and not force:
        raise UsageError(f"{path} already exists: choose another output or pass --force")
    if path.is_dir():
        raise UsageError(f"{path} is a folder: give a file name for the HTML report")
    reports = [images] if isinstance(images, ImageReport) else list(images or ())
    image_titles = {t.title for report in reports for t in report.tables()}
    parts: list[str] = [_head(title)]
    parts.append('<nav class="toc"><a href="#summary">Summary</a>')
    if tables or plots:
        parts.append('<a href="#latency">Latency</a>')
    if reports:
        parts.append('<a href="#images">Images</a>')
    parts.append("</nav><main>")
    parts.append('<section id="summary"><h2>Summary</h2><ul>')
    lines = list(summary) + [line for report in reports[:1] for line in report.summary()]
    parts.extend(f"<li>{_t(line)}</li>" for line in lines)
    parts.append("</ul></section>")
    if tables or plots:
        parts.append('<section id="latency"><h2>Latency</h2>')
        parts.extend(_table(t) for t in tables if t.title not in image_titles)
        parts.extend(_plot(name, png) for name, png in plots)
        parts.append("</section>")
    if reports:
        parts.append(_images_section(reports, path.parent))
    parts.append(f"</main><script>{JS}</script></body></html>\n")
    _write_atomically(path, parts)


def _write_atomically(path: Path, parts: Iterable[str]) -> None:
    """Write beside the target, then rename: a failed run never leaves half a report."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as handle:
            for part in parts:
                handle.write(part)
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _head(title: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f'<header class="top"><h1>{_e(title)}</h1>'
        f"<p>imgtrace {_e(__version__)} · offline report</p></header>"
    )


def _table(table: Table) -> str:
    out = [f'<table class="data"><caption>{_e(table.title)}</caption><thead><tr>']
    out.extend(f"<th>{_e(column)}</th>" for column in table.columns)
    out.append("</tr></thead><tbody>")
    classes = table.row_classes or []
    for index, row in enumerate(table.rows):
        css = f' class="{_e(classes[index])}"' if index < len(classes) else ""
        cells = "".join(
            f'<td class="text">{_t(c)}</td>' if _is_text(c) else f"<td>{_t(c)}</td>" for c in row
        )
        out.append(f"<tr{css}>{cells}</tr>")
    out.append("</tbody></table>")
    if table.footnotes:
        out.append('<ol class="notes">')
        out.extend(f"<li>{_t(note)}</li>" for note in table.footnotes)
        out.append("</ol>")
    return "".join(out)


def _is_text(cell: str) -> bool:
    return len(cell) > 24 or cell[:1].isalpha()


def _plot(title: str, png: bytes) -> str:
    data = base64.b64encode(png).decode()
    return (
        f'<figure class="plot"><img alt="{_e(title)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(title)}</figcaption></figure>"
    )


# -- the image section ----------------------------------------------------------------------


def _images_section(reports: list[ImageReport], report_dir: Path) -> str:
    out = ['<section id="images"><h2>Images</h2>']
    for number, report in enumerate(reports):
        if len(reports) > 1:
            title = f"{Path(report.cand).name} (B) against {Path(report.base).name} (A)"
            out.append(f'<h3 id="images-{number}">{_t(title)}</h3>')
        out.append(_image_part(report, report_dir, first=number == 0))
    return "".join(out) + "</section>"


def _image_part(report: ImageReport, report_dir: Path, *, first: bool) -> str:
    out = [_table(t) for t in report.tables()]
    rows = [(i, report.pairs[i], report.rendered.get(i)) for i in range(len(report.pairs))]
    rows = [(i, p, r) for i, p, r in rows if r is not None]
    if not rows:
        if first:
            out.append('<p class="more">No pictures: run compare with --html to draw them.</p>')
        return "".join(out)
    counts: dict[str, int] = {}
    for _, pair, _ in rows:
        counts[pair.verdict] = counts.get(pair.verdict, 0) + 1
    out.append('<div class="chips" role="toolbar" aria-label="filter by verdict">')
    for verdict in reversed(VERDICTS):
        if verdict in counts:
            out.append(
                f'<button class="chip" type="button" data-verdict="{verdict}" aria-pressed="true">'
                f'<span class="badge {verdict}">{verdict}</span> {counts[verdict]}</button>'
            )
    out.append(
        f'<span class="hint"><span id="shown-count">{len(rows)}</span> shown · ←/→ or j/k: '
        "next/previous · 1/2/3: side-by-side/slider/toggle · t: flip A/B</span></div>"
    )
    assets = report.assets_dir
    base_href = _href_base(assets, report_dir) if assets is not None else ""
    for index, pair, rendered in rows:
        assert rendered is not None
        out.append(_row(report, index, pair, rendered, base_href))
    hidden = len(report.pairs) - len(rows)
    if hidden:
        out.append(
            f'<p class="more">{hidden} less severe outputs are not drawn (raise --image-rows to '
            "draw more); the JSON output lists every one.</p>"
        )
    return "".join(out)


def _href_base(assets: Path, report_dir: Path) -> str:
    relative = os.path.relpath(assets.resolve(), report_dir.resolve())
    return urllib.parse.quote(Path(relative).as_posix()) + "/"


def _row(report: ImageReport, index: int, pair: PairResult, rendered: Rendered, base: str) -> str:
    info = report.requests.get(pair.request_id)
    request = pair.request_id + (f" (loop {pair.loop})" if pair.loop else "")
    out = [
        f'<article class="row" id="row{index}" tabindex="-1" data-verdict="{_e(pair.verdict)}">',
        '<div class="row-head">',
        f'<span class="badge {_e(pair.verdict)}">{_e(pair.verdict)}</span>',
        f"<b>{_t(request)}</b><span>output {pair.output}</span>",
        f'<span class="params">{_t(pair.request_class)}</span>',
    ]
    if pair.reason:
        out.append(f'<span class="reason">{_t(pair.reason)}</span>')
    out.append("</div>")
    if info is not None and info.prompt:
        out.append(f'<p class="prompt">{_t(info.prompt)}</p>')
    if info is not None and info.params:
        params = ", ".join(f"{k}={v}" for k, v in info.params.items())
        out.append(f'<p class="params">{_t(params)}</p>')
    out.append(_metrics(pair))
    out.append('<div class="cells">')
    for key, label in _CELLS:
        if key == "noise" and report.noise is None:
            continue
        out.append(_cell(rendered.cells.get(key), key, label, base))
    out.append("</div>")
    if "a" in rendered.cells and "b" in rendered.cells:
        out.append(_viewer())
    out.append("</article>")
    return "".join(out)


def _metrics(pair: PairResult) -> str:
    m = pair.metrics
    items: list[tuple[str, str]] = []
    if m is not None:
        items += [
            ("cast ΔE00", f"{m.cast:.2f}"),
            ("local ΔE00", f"{m.local:.2f} ({m.local_windows} windows over)"),
            ("PSNR", f"{format_psnr(pair)} dB"),
            ("SSIM", f"{m.ssim:.4f}"),
            ("pHash", f"{m.phash}/64"),
            ("dHash", f"{m.dhash}/64"),
            ("diff px", f"{m.diff_pixels:,} ({m.diff_ratio * 100:.3f}%)"),
            ("max YIQ", f"{m.max_delta:.3f}"),
        ]
        if m.resized:
            items.append(("note", "B resized to A for these figures"))
    if pair.d_ab is not None:
        items.append(("1-SSIM A/B", f"{pair.d_ab:.4f}"))
    if pair.d_aa is not None:
        items.append(("1-SSIM A/A′", f"{pair.d_aa:.4f}"))
    if pair.noise_verdict:
        items.append(("A/A′", pair.noise_verdict))
    body = "".join(f"<div><dt>{_t(k)}</dt><dd>{_t(v)}</dd></div>" for k, v in items)
    return f'<dl class="metrics">{body}</dl>'


def _cell(cell: Cell | None, key: str, label: str, base: str) -> str:
    if cell is None:
        return (
            f'<figure><div class="empty">no {_e(label)}</div>'
            f"<figcaption>{_e(label)}</figcaption></figure>"
        )
    kind = "image/png" if cell.thumb.startswith(b"\x89PNG") else "image/jpeg"
    data = base64.b64encode(cell.thumb).decode()
    href = base + urllib.parse.quote(cell.href)
    return (
        f'<figure><a href="{_e(href)}" target="_blank" rel="noopener">'
        f'<img data-key="{_e(key)}" alt="{_e(label)}" src="data:{kind};base64,{data}"></a>'
        f"<figcaption>{_e(label)} · {cell.width}×{cell.height}</figcaption></figure>"
    )


def _viewer() -> str:
    buttons = "".join(
        f'<button type="button" data-mode="{mode}" aria-pressed="{str(mode == "side").lower()}">'
        f"{label}</button>"
        for mode, label in (("side", "Side by side"), ("slider", "Slider"), ("toggle", "Toggle"))
    )
    return (
        f'<div class="viewer" data-mode="side"><div class="modes">{buttons}</div>'
        '<div class="stage"><div class="under"><img class="va" alt="A"><span class="label">A</span>'
        '</div><div class="over"><img class="vb" alt="B"><span class="label">B</span></div></div>'
        '<input class="slide" type="range" min="0" max="100" value="50" '
        'aria-label="slider position">'
        "</div>"
    )
