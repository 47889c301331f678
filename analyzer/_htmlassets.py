"""The inline stylesheet and script of the HTML report (no network, no external files)."""

from __future__ import annotations

__all__ = ["CSS", "JS"]

CSS = """
:root { --fg: #1d1f23; --muted: #5f6670; --line: #d9dce1; --bg: #f6f7f9; --card: #fff;
  --changed: #c62828; --layout: #8e24aa; --missing: #6d4c41; --noise: #ef8f00;
  --same: #2e7d32; --visual: #558b2f; --accent: #1f5fbf; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--fg); background: var(--bg); }
header.top { padding: 16px 24px; background: #20242b; color: #fff; }
header.top h1 { margin: 0; font-size: 20px; }
header.top p { margin: 4px 0 0; color: #c5cad3; }
nav.toc { padding: 8px 24px; background: #fff; border-bottom: 1px solid var(--line);
  position: sticky; top: 0; z-index: 5; }
nav.toc a { margin-right: 16px; color: var(--accent); text-decoration: none; }
main { padding: 8px 24px 48px; max-width: 1500px; }
section { margin-top: 24px; }
h2 { font-size: 18px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
table.data { border-collapse: collapse; margin: 12px 0 4px; background: var(--card);
  font-variant-numeric: tabular-nums; }
table.data caption { text-align: left; font-weight: 600; padding: 4px 0; }
table.data th, table.data td { border: 1px solid var(--line); padding: 3px 8px; text-align: right;
  vertical-align: top; }
table.data th:first-child, table.data td:first-child { text-align: left; }
table.data td.text { text-align: left; }
tr.changed td:first-child, tr.slower td:first-child, tr.regression td:first-child,
tr.layout-differs td:first-child, tr.missing td:first-child,
tr.undecodable td:first-child { border-left: 4px solid var(--changed); }
tr.same td:first-child, tr.faster td:first-child { border-left: 4px solid var(--same); }
.ctl { font-family: monospace; font-size: 0.85em; color: #b00020; background: #fde8ec;
       border-radius: 3px; padding: 0 2px; }
ol.notes { margin: 2px 0 12px; padding-left: 22px; color: var(--muted); font-size: 12px; }
figure.plot { display: inline-block; margin: 8px 12px 8px 0; background: var(--card);
  border: 1px solid var(--line); padding: 6px; }
figure.plot img { max-width: 640px; width: 100%; display: block; }
.chips { margin: 12px 0; display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
.chip { border: 1px solid var(--line); background: #fff; border-radius: 14px; padding: 3px 10px;
  cursor: pointer; font: inherit; }
.chip[aria-pressed="false"] { opacity: .45; text-decoration: line-through; }
.hint { color: var(--muted); font-size: 12px; margin-left: 8px; }
article.row { background: var(--card); border: 1px solid var(--line); border-radius: 6px;
  margin: 12px 0; padding: 10px 12px; outline: none; }
article.row.current { box-shadow: 0 0 0 3px var(--accent); }
article.row.hidden { display: none; }
.row-head { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
.badge { color: #fff; border-radius: 4px; padding: 1px 7px; font-size: 12px; font-weight: 600;
  background: var(--muted); }
.badge.changed, .badge.undecodable { background: var(--changed); }
.badge.layout-differs { background: var(--layout); }
.badge.missing { background: var(--missing); }
.badge.within-noise { background: var(--noise); }
.badge.visually-identical { background: var(--visual); }
.badge.identical-pixels, .badge.identical-bytes { background: var(--same); }
.reason { color: var(--muted); }
.prompt { margin: 6px 0; white-space: pre-wrap; overflow-wrap: anywhere; max-height: 5.8em;
  overflow: auto; background: var(--bg); padding: 4px 8px; border-radius: 4px; }
.params { color: var(--muted); font-size: 12px; }
dl.metrics { display: flex; flex-wrap: wrap; gap: 2px 16px; margin: 6px 0;
  font-variant-numeric: tabular-nums; }
dl.metrics div { display: flex; gap: 4px; }
dl.metrics dt { color: var(--muted); }
dl.metrics dd { margin: 0; font-weight: 600; }
.cells { display: flex; gap: 8px; flex-wrap: wrap; }
.cells figure { margin: 0; width: 160px; }
.cells figure img { width: 160px; height: auto; display: block; border: 1px solid var(--line);
  background: repeating-conic-gradient(#ddd 0 25%, #fff 0 50%) 0 0 / 16px 16px; }
.cells figcaption { font-size: 11px; color: var(--muted); }
.cells .empty { width: 160px; height: 90px; border: 1px dashed var(--line); display: flex;
  align-items: center; justify-content: center; color: var(--muted); font-size: 12px; }
.viewer { margin-top: 8px; }
.modes button { font: inherit; border: 1px solid var(--line); background: #fff; padding: 2px 10px;
  cursor: pointer; }
.modes button[aria-pressed="true"] { background: var(--accent); color: #fff;
  border-color: var(--accent); }
.stage { margin-top: 6px; position: relative; display: inline-block; user-select: none; }
.stage img { display: block; width: 480px; max-width: 90vw; height: auto; }
.stage .label { position: absolute; top: 4px; left: 4px; background: rgba(0,0,0,.6); color: #fff;
  font-size: 11px; padding: 1px 6px; border-radius: 3px; }
.viewer[data-mode="side"] .stage { display: flex; gap: 8px; }
.viewer[data-mode="side"] .over { position: relative; }
.viewer[data-mode="side"] .slide, .viewer[data-mode="toggle"] .slide { display: none; }
.viewer[data-mode="slider"] .over, .viewer[data-mode="toggle"] .over {
  position: absolute; top: 0; left: 0; }
.viewer[data-mode="slider"] .over { clip-path: inset(0 0 0 var(--cut, 50%)); }
.viewer[data-mode="slider"] .over::before { content: ""; position: absolute; top: 0; bottom: 0;
  left: var(--cut, 50%); border-left: 2px solid #fff; z-index: 1; }
.viewer[data-mode="slider"] .over .label { left: auto; right: 4px; }
.viewer[data-mode="toggle"] .stage { cursor: pointer; }
.viewer[data-mode="toggle"].show-a .over { visibility: hidden; }
.slide { display: block; width: 480px; max-width: 90vw; margin-top: 4px; }
.more { color: var(--muted); }
"""

JS = """
(function () {
  'use strict';
  var rows = Array.prototype.slice.call(document.querySelectorAll('article.row'));
  var current = -1;
  function upgrade(viewer) {
    // Full-size pictures only once a viewer is used: hundreds of rows stay light to open.
    if (viewer.getAttribute('data-full') === 'true') { return; }
    viewer.setAttribute('data-full', 'true');
    viewer.querySelectorAll('img[data-full]').forEach(function (img) {
      var full = new Image();
      full.onload = function () { img.src = full.src; };
      full.src = img.getAttribute('data-full');
    });
  }
  function setMode(viewer, mode) {
    upgrade(viewer);
    viewer.setAttribute('data-mode', mode);
    viewer.classList.remove('show-a');
    viewer.querySelectorAll('.modes button').forEach(function (b) {
      b.setAttribute('aria-pressed', String(b.getAttribute('data-mode') === mode));
    });
  }
  function toggle(viewer) {
    if (viewer.getAttribute('data-mode') !== 'toggle') { setMode(viewer, 'toggle'); }
    viewer.classList.toggle('show-a');
  }
  document.querySelectorAll('.viewer').forEach(function (viewer) {
    var row = viewer.closest('article.row');
    ['a', 'b'].forEach(function (key) {
      var source = row.querySelector('.cells img[data-key="' + key + '"]');
      var target = viewer.querySelector('img.v' + key);
      if (source && target) {
        target.src = source.src;
        target.setAttribute('data-full', source.closest('a').getAttribute('href'));
      }
    });
    viewer.querySelectorAll('.modes button').forEach(function (button) {
      button.addEventListener('click', function () {
        setMode(viewer, button.getAttribute('data-mode'));
      });
    });
    var slide = viewer.querySelector('.slide');
    slide.addEventListener('input', function () {
      viewer.querySelector('.over').style.setProperty('--cut', slide.value + '%');
    });
    viewer.querySelector('.stage').addEventListener('click', function () {
      if (viewer.getAttribute('data-mode') === 'toggle') { toggle(viewer); }
    });
  });
  function visible() {
    return rows.filter(function (r) { return !r.classList.contains('hidden'); });
  }
  function focusRow(row) {
    rows.forEach(function (r) { r.classList.remove('current'); });
    if (!row) { return; }
    row.classList.add('current');
    current = rows.indexOf(row);
    var viewer = row.querySelector('.viewer');
    if (viewer) { upgrade(viewer); }
    row.focus({preventScroll: true});
    row.scrollIntoView({block: 'center'});
  }
  function step(delta) {
    var shown = visible();
    if (!shown.length) { return; }
    var at = shown.indexOf(rows[current]);
    var next = at < 0 ? (delta > 0 ? 0 : shown.length - 1)
                      : Math.min(shown.length - 1, Math.max(0, at + delta));
    focusRow(shown[next]);
  }
  document.querySelectorAll('.chip[data-verdict]').forEach(function (chip) {
    chip.addEventListener('click', function () {
      var on = chip.getAttribute('aria-pressed') !== 'true';
      chip.setAttribute('aria-pressed', String(on));
      var verdict = chip.getAttribute('data-verdict');
      rows.forEach(function (r) {
        if (r.getAttribute('data-verdict') === verdict) { r.classList.toggle('hidden', !on); }
      });
      var count = document.getElementById('shown-count');
      if (count) { count.textContent = String(visible().length); }
    });
  });
  rows.forEach(function (row) {
    row.addEventListener('click', function () { focusRow(row); });
  });
  document.addEventListener('keydown', function (event) {
    var tag = event.target && event.target.tagName;
    if (tag === 'INPUT' || tag === 'TEXTAREA' || event.altKey || event.ctrlKey || event.metaKey) {
      return;
    }
    var row = rows[current];
    var viewer = row ? row.querySelector('.viewer') : null;
    var modes = {'1': 'side', '2': 'slider', '3': 'toggle'};
    if (event.key === 'ArrowRight' || event.key === 'j') { step(1); event.preventDefault(); }
    else if (event.key === 'ArrowLeft' || event.key === 'k') { step(-1); event.preventDefault(); }
    else if (viewer && modes[event.key]) { setMode(viewer, modes[event.key]); }
    else if (viewer && event.key === 't') { toggle(viewer); }
  });
  document.documentElement.setAttribute('data-ready', 'true');
})();
"""
