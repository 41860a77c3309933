"""The report page of `tinygpt grade`: one self-contained HTML file (inline CSS, JS and SVG plots,
nothing fetched from anywhere) that shows what was graded, the runs' scores side by side, the
scores against model size and training tokens, and the stories with their flagged spans.

Every text that comes from the grade (stories, run names, notes, paths) is HTML-escaped: stories are
model output, untrusted. The page also forbids itself any network access (a Content-Security-Policy
that allows only its own inline style and script), so a slip could not reach out either."""

from __future__ import annotations

import html
import math
import os
import re
from importlib import resources
from pathlib import Path

from tinygpt.fileio import atomic_write

MAX_COMPLETIONS = 100  # stories shown per run: 10 runs x 560 stories would make a page of megabytes
MAX_PLOTS = 6
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
# Translucent, so that one palette reads on the light and the dark background.
PALETTE = ("rgba(239,68,68,.32)", "rgba(249,115,22,.34)", "rgba(234,179,8,.40)", "rgba(59,130,246,.32)",
           "rgba(168,85,247,.32)", "rgba(20,184,166,.34)", "rgba(236,72,153,.32)", "rgba(34,197,94,.34)",
           "rgba(120,113,108,.36)")
# The scores plotted against size, most telling first (those the runs have).
KEY_SCORES = ("bpb", "judge_consistency", "judge_grammar", "unknown_words", "repeated_ngrams", "new_names",
              "pronoun_mismatch", "distinct_2", "self_bleu", "child_words", "novelty_overlap")
# Figures that are not checks, so the grade's own descriptions may not name them.
DESCRIPTIONS = {
    "bpb": "bits per byte on held-out stories (the training's validation loss)",
    "distinct_1": "distinct words / all words, over the run's stories",
    "distinct_2": "distinct word pairs / all word pairs, over the run's stories",
    "distinct_3": "distinct word triples / all word triples, over the run's stories",
    "self_bleu": "mean BLEU (0-100) of each story against the others: high when the stories repeat each other",
    "child_words": "share of words inside a child's vocabulary"}
AXES = (("params", "parameters"), ("train_tokens", "training tokens"))

esc = html.escape


def _asset(name: str) -> str:
    return (resources.files(__package__) / "static" / name).read_text(encoding="utf-8")


# ---- numbers ------------------------------------------------------------------------------------

def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def fmt(x) -> str:
    """A score, to about three significant digits, without exponents for everyday values."""
    x = _num(x)
    if x is None:
        return "—"
    a = abs(x)
    if a == 0:
        return "0"
    for bound, spec in ((1000, ",.0f"), (100, ".0f"), (10, ".1f"), (1, ".2f"), (0.001, ".3f")):
        if a >= bound:
            return format(x, spec)
    return format(x, ".2g")


def _short(x) -> str:
    """A per-story number: whole ones without decimals (a check's 1, a span's 12 tokens)."""
    return str(int(x)) if _num(x) is not None and float(x).is_integer() else fmt(x)


def count(n) -> str:
    """1234567 -> 1.23M."""
    n = _num(n)
    if n is None:
        return "—"
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.0f}"


def duration(s) -> str:
    s = _num(s)
    if s is None:
        return "—"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def css_name(check: str) -> str:
    """A check's name as a class name (names come from the data, so only safe characters)."""
    return "f-" + re.sub(r"[^a-z0-9_-]", "-", str(check).lower())


# ---- the grade's figures --------------------------------------------------------------------------

def value(run: dict, name: str) -> float | None:
    """A run's figure by name: bpb, a score's mean or a diversity figure."""
    if name == "bpb":
        return _num(run.get("bpb"))
    score = (run.get("scores") or {}).get(name)
    if isinstance(score, dict):
        return _num(score.get("mean"))
    return _num((run.get("diversity") or {}).get(name))


def score_names(grade: dict) -> tuple[list[str], list[str]]:
    """The per-story scores (the checks in their display order, then the rest as the runs have
    them) and the set-level diversity figures."""
    scores = list(grade.get("checks") or {})
    diversity: list[str] = []
    for run in grade.get("runs") or []:
        scores += [k for k in run.get("scores") or {} if k not in scores]
        diversity += [k for k in run.get("diversity") or {} if k not in diversity]
    have = {k for run in grade.get("runs") or [] for k in run.get("scores") or {}}
    return [k for k in scores if k in have and k not in diversity], diversity


def description(grade: dict, name: str) -> str:
    checks = grade.get("checks") or {}
    if name in checks:
        return str(checks[name])
    prefixed = [d for k, d in checks.items() if k.startswith(name + "_")]  # a span "novelty": "novelty_span"
    return DESCRIPTIONS.get(name) or (str(prefixed[0]) if prefixed else "")


def direction(grade: dict, name: str) -> bool:
    """True where higher is better."""
    return name in (grade.get("scores_higher_better") or ())


def best_of(values: list[float | None], higher: bool) -> set[int]:
    """The columns holding a row's best value (all of them on a tie; none with fewer than two)."""
    known = [(i, v) for i, v in enumerate(values) if v is not None]
    if len(known) < 2 or len({v for _, v in known}) < 2:
        return set()
    top = (max if higher else min)(v for _, v in known)
    return {i for i, v in known if v == top}


# ---- header and table -----------------------------------------------------------------------------

def header(grade: dict) -> tuple[str, str]:
    """The page's top line, and the card saying what was graded and how."""
    s, runs = grade.get("settings") or {}, grade.get("runs") or []
    judge = s.get("judge")
    judge_text = (f"{judge.get('model', '?')} at {judge.get('url', '?')}" if isinstance(judge, dict)
                  else "none (offline checks only)")
    items = [("samples per beginning", s.get("samples")), ("temperature", s.get("temperature")),
             ("top-p", s.get("top_p")), ("max new tokens", s.get("max_new_tokens")), ("seed", s.get("seed")),
             ("beginnings", s.get("beginnings")), ("judge", judge_text)]
    dl = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(str(v if v is not None else '—'))}</dd></div>" for k, v in items)
    graded = "".join(
        f"<li><b>{esc(str(r.get('name', '?')))}</b> <span class=\"muted\">{esc(str(r.get('kind', 'run')))}"
        f"{' · ' + esc(str(r['path'])) if r.get('path') else ''}</span></li>" for r in runs)
    created = esc(str(grade.get("created") or ""))
    top = (f"<header class=\"top\"><h1>tinygpt grade</h1><p class=\"muted\">{len(runs)} "
           f"{'run' if len(runs) == 1 else 'runs'} graded{' on ' + created if created else ''}</p>"
           f"<nav><a href=\"#scores\">scores</a><a href=\"#plots\">plots</a><a href=\"#stories\">stories</a></nav>"
           f"</header>")
    return top, (f"<section class=\"card\" id=\"graded\"><h2>What was graded</h2><ul class=\"runs\">{graded}</ul>"
                 f"<dl class=\"settings\">{dl}</dl></section>")


def _row(label: str, cells: list[str], values: list[float | None], higher: bool | None, title: str = "") -> str:
    best = best_of(values, higher) if higher is not None else set()
    arrow = "" if higher is None else (" <span class=\"dir\" title=\"higher is better\">↑</span>" if higher
                                       else " <span class=\"dir\" title=\"lower is better\">↓</span>")
    tds = "".join(f"<td class=\"best\" title=\"best of the runs\">{c}</td>" if i in best else f"<td>{c}</td>"
                  for i, c in enumerate(cells))
    return f"<tr><th scope=\"row\" title=\"{esc(title)}\">{esc(label)}{arrow}</th>{tds}</tr>"


def _score_cell(run: dict, name: str) -> str:
    score = (run.get("scores") or {}).get(name)
    if not isinstance(score, dict) or _num(score.get("mean")) is None:
        return "<span class=\"na\">—</span>"
    sd = f" <span class=\"sd\">± {fmt(score.get('std'))}</span>" if _num(score.get("std")) is not None else ""
    return f"<span title=\"n = {esc(str(score.get('n', '?')))}\">{fmt(score['mean'])}</span>{sd}"


def table(grade: dict) -> str:
    """The runs side by side: size and training, then each score, the best of a row marked."""
    runs = grade.get("runs") or []
    scores, diversity = score_names(grade)
    heads = "".join(f"<th scope=\"col\">{esc(str(r.get('name', '?')))}</th>" for r in runs)
    group = f"<tr class=\"group\"><th scope=\"rowgroup\" colspan=\"{len(runs) + 1}\">{{}}</th></tr>"
    rows = [_row("parameters", [count(r.get("params")) for r in runs], [None] * len(runs), None),
            _row("training tokens", [count(r.get("train_tokens")) for r in runs], [None] * len(runs), None),
            _row("training time", [duration(r.get("train_seconds")) for r in runs], [None] * len(runs), None),
            _row("bpb", [fmt(r.get("bpb")) for r in runs], [value(r, "bpb") for r in runs], False,
                 description(grade, "bpb")),
            group.format("per story: mean ± std")]
    rows += [_row(k, [_score_cell(r, k) for r in runs], [value(r, k) for r in runs], direction(grade, k),
                  description(grade, k)) for k in scores]
    if diversity:
        rows.append(group.format("over the whole set"))
        rows += [_row(k, [fmt(value(r, k)) for r in runs], [value(r, k) for r in runs], direction(grade, k),
                      description(grade, k)) for k in diversity]
    if any(isinstance(r.get("judge"), dict) for r in runs):
        rows.append(group.format("judge"))
        rows.append(_row("age groups", [_age_groups(r.get("judge")) for r in runs], [None] * len(runs), None,
                         "how many stories the judge placed in each age group"))
        rows.append(_row("failures", [fmt((r.get("judge") or {}).get("failures")) for r in runs],
                         [_num((r.get("judge") or {}).get("failures")) for r in runs], False,
                         "stories the judge gave no usable answer for"))
    legend = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(description(grade, k))}</dd></div>"
                     for k in ["bpb", *scores, *diversity] if description(grade, k))
    return (f"<section class=\"card\" id=\"scores\"><h2>Scores</h2><div class=\"scroll\"><table class=\"scores\">"
            f"<thead><tr><th scope=\"col\">run</th>{heads}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
            f"<p class=\"muted small\">↓ lower is better, ↑ higher is better; the best of each row is "
            f"<span class=\"best\">marked</span>.</p><dl class=\"legend\">{legend}</dl></section>")


def _age_groups(judge) -> str:
    groups = (judge or {}).get("age_groups") if isinstance(judge, dict) else None
    if not isinstance(groups, dict) or not groups:
        return "<span class=\"na\">—</span>"
    return " ".join(f"<span class=\"nowrap\">{esc(str(k))}&nbsp;{esc(str(v))}</span>" for k, v in groups.items())


# ---- plots ------------------------------------------------------------------------------------------

def ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """Round tick values spanning lo..hi (1, 2 or 5 times a power of ten apart)."""
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step + 1e-9) * step
    return [first + i * step for i in range(int(math.ceil((hi - first) / step - 1e-9)) + 1)]


def _y_domain(ys: list[float]) -> list[float]:
    lo, hi = min(ys), max(ys)
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    pad = (hi - lo) * 0.08  # room for the points' names above the highest
    return ticks(lo - pad, hi + pad)


def _x_scale(xs: list[float], left: float, right: float):
    """The x mapping (logarithmic when the values span a wide range, as model sizes do) and its ticks."""
    lo, hi = min(xs), max(xs)
    if lo > 0 and hi / lo >= 8:
        a, b = math.log10(lo), math.log10(hi)
        pad = (b - a) * 0.08
        a, b = a - pad, b + pad
        marks = [m * 10 ** k for k in range(math.floor(a), math.ceil(b) + 1) for m in (1, 2, 5)]
        marks = [t for t in marks if a <= math.log10(t) <= b]
        if len(marks) > 7:
            marks = [t for t in marks if str(int(t)).startswith("1")]
        return (lambda x: left + (math.log10(x) - a) / (b - a) * (right - left)), marks
    pad = (hi - lo) * 0.08
    a, b = lo - pad, hi + pad
    return (lambda x: left + (x - a) / (b - a) * (right - left)), [t for t in ticks(a, b) if a <= t <= b]


def plot_svg(name: str, xlabel: str, points: list[tuple[float, float, str]], refs: list[tuple[float, str]]) -> str:
    """One score against model size or training tokens: the runs as a line of labelled points, the
    reference sets (stories with no model size) as dashed horizontal lines."""
    w, h, left, right, top, bottom = 360, 222, 50, 346, 10, 188
    points = sorted(points)
    x_of, xmarks = _x_scale([p[0] for p in points], left + 8, right - 8)
    ymarks = _y_domain([p[1] for p in points] + [r[0] for r in refs])
    y0, y1 = ymarks[0], ymarks[-1]
    y_of = lambda y: bottom - (y - y0) / (y1 - y0) * (bottom - top)  # noqa: E731
    out = [f"<svg class=\"plot\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{esc(name)} against {xlabel}\">",
           f"<title>{esc(name)} against {xlabel}</title>"]
    for t in ymarks:
        out.append(f"<line class=\"grid\" x1=\"{left}\" x2=\"{right}\" y1=\"{y_of(t):.1f}\" y2=\"{y_of(t):.1f}\"/>"
                   f"<text class=\"tick\" x=\"{left - 5}\" y=\"{y_of(t) + 3:.1f}\" text-anchor=\"end\">{fmt(t)}</text>")
    for t in xmarks:
        out.append(f"<line class=\"grid\" x1=\"{x_of(t):.1f}\" x2=\"{x_of(t):.1f}\" y1=\"{top}\" y2=\"{bottom}\"/>"
                   f"<text class=\"tick\" x=\"{x_of(t):.1f}\" y=\"{bottom + 13}\" text-anchor=\"middle\">"
                   f"{count(t)}</text>")
    out.append(f"<rect class=\"frame\" x=\"{left}\" y=\"{top}\" width=\"{right - left}\" height=\"{bottom - top}\"/>")
    for y, label in refs:
        out.append(f"<line class=\"ref\" x1=\"{left}\" x2=\"{right}\" y1=\"{y_of(y):.1f}\" y2=\"{y_of(y):.1f}\">"
                   f"<title>{esc(label)}: {fmt(y)}</title></line><text class=\"ref-label\" x=\"{left + 4}\" "
                   f"y=\"{y_of(y) + (12 if y_of(y) < top + 14 else -4):.1f}\">{esc(label)}</text>")
    xy = [(x_of(x), y_of(y)) for x, y, _ in points]
    out.append("<polyline class=\"line\" points=\"" + " ".join(f"{a:.1f},{b:.1f}" for a, b in xy) + "\"/>")
    for i, ((x, y, label), (px, py)) in enumerate(zip(points, xy)):
        anchor = "start" if px < (left + right) / 2 else "end"
        ly = py - 7 if i % 2 == 0 or py > bottom - 12 else py + 14  # alternate sides: neighbours' names collide less
        out.append(f"<circle class=\"pt\" cx=\"{px:.1f}\" cy=\"{py:.1f}\" r=\"4\"><title>{esc(label)}: "
                   f"{fmt(y)} at {count(x)} {xlabel}</title></circle><text class=\"pt-label\" "
                   f"x=\"{px + (5 if anchor == 'start' else -5):.1f}\" y=\"{max(ly, top + 10):.1f}\" "
                   f"text-anchor=\"{anchor}\">{esc(label)}</text>")
    out.append(f"<text class=\"axis\" x=\"{(left + right) / 2}\" y=\"{h - 4}\" text-anchor=\"middle\">{xlabel}</text>")
    return "".join(out) + "</svg>"


def plots(grade: dict) -> str:
    """The key scores against model size and against training tokens, where the runs differ in them."""
    runs = grade.get("runs") or []
    models = [r for r in runs if r.get("kind") != "stories"]
    refs = [r for r in runs if r.get("kind") == "stories"]
    scores, diversity = score_names(grade)
    groups = []
    for key, xlabel in AXES:
        placed = [r for r in models if (_num(r.get(key)) or 0) > 0]
        if len({_num(r[key]) for r in placed}) < 2:
            continue
        names = [k for k in KEY_SCORES if k in ["bpb", *scores, *diversity]
                 and sum(value(r, k) is not None for r in placed) >= 2][:MAX_PLOTS]
        figs = "".join(
            f"<figure><figcaption>{esc(k)} <span class=\"dir\">{'↑ higher' if direction(grade, k) else '↓ lower'} "
            f"is better</span></figcaption>"
            + plot_svg(k, xlabel, [(_num(r[key]), value(r, k), str(r.get("name", "?"))) for r in placed
                                   if value(r, k) is not None],
                       [(value(r, k), str(r.get("name", "?"))) for r in refs if value(r, k) is not None])
            + "</figure>" for k in names)
        missing = [str(r.get("name", "?")) for r in models if r not in placed]
        note = (f"<p class=\"muted small\">Not placed (no {xlabel} known): {esc(', '.join(missing))}.</p>"
                if missing else "")
        groups.append(f"<h3>against {xlabel}</h3><div class=\"plots\">{figs}</div>{note}")
    if not groups:
        why = ("Only one run was graded: plots need several to compare (grade runs of different sizes together)."
               if len(runs) < 2 else "The runs do not differ in size or in training tokens (or these are unknown), "
                                     "so there is nothing to plot them against.")
        return f"<section class=\"card\" id=\"plots\"><h2>Plots</h2><p class=\"muted no-plots\">{why}</p></section>"
    ref_note = (f"<p class=\"muted small\">Dashed lines: {esc(', '.join(str(r.get('name', '?')) for r in refs))} "
                f"(stories, not a model).</p>" if refs else "")
    return (f"<section class=\"card\" id=\"plots\"><h2>Plots</h2><p class=\"muted small\">Means over each run's "
            f"stories.</p>{''.join(groups)}{ref_note}</section>")


# ---- stories ---------------------------------------------------------------------------------------

def story_html(story: str, cut, spans, colours: dict[str, str] | None = None) -> str:
    """The story's text split at every span boundary (spans may overlap) and at the end of the
    given beginning: each piece once, in a <mark> with the classes of every span covering it (a
    piece under several shows each one's colour, in bands)."""
    story = str(story or "")
    n = len(story)
    cut = min(max(int(_num(cut) or 0), 0), n)
    clean = []
    for s in spans or ():
        try:
            a, b = max(int(s["start"]), 0), min(int(s["end"]), n)
        except (KeyError, TypeError, ValueError):
            continue  # a malformed span loses its highlight, never the text
        if a < b:
            clean.append((a, b, str(s.get("check", "")), str(s.get("note", ""))))
    bounds = sorted({0, cut, n, *(a for a, _, _, _ in clean), *(b for _, b, _, _ in clean)})
    out = []
    for a, b in zip(bounds, bounds[1:]):
        piece = esc(story[a:b])
        over = [s for s in clean if s[0] <= a and b <= s[1]]
        classes = (["given"] if b <= cut else []) + ([] if not over else ["flag"] + list(dict.fromkeys(
            css_name(s[2]) for s in over)))
        style = ""
        if len(over) > 1:
            classes.append("multi")
            style = f" style=\"{_bands([(colours or {}).get(s[2], PALETTE[-1]) for s in over])}\""
        if not over:
            out.append(f"<span class=\"given\">{piece}</span>" if classes else piece)
            continue
        title = "\n".join(f"{s[2]}: {s[3]}" if s[3] else s[2] for s in over)
        out.append(f"<mark class=\"{' '.join(classes)}\"{style} title=\"{esc(title)}\">{piece}</mark>")
    return "".join(out)


def _bands(colours: list[str]) -> str:
    """A background of horizontal bands, one per colour (the colours are ours, not the data's)."""
    step = 100 / len(colours)
    stops = ",".join(f"{c} {i * step:.0f}% {(i + 1) * step:.0f}%" for i, c in enumerate(colours))
    return f"background:linear-gradient(to bottom,{stops})"


def _flags(c: dict, higher: set) -> list[str]:
    """The checks that flag a story: a positive value of a lower-is-better check, or a span."""
    flagged = [k for k, v in (c.get("checks") or {}).items() if k not in higher and (_num(v) or 0) > 0]
    flagged += [str(s.get("check")) for s in c.get("spans") or () if isinstance(s, dict) and s.get("check")]
    return list(dict.fromkeys(flagged))


def _numbers(c: dict, higher: set) -> str:
    chips = [f"<span class=\"chip{' on ' + css_name(k) if k not in higher and (_num(v) or 0) > 0 else ''}\">"
             f"{esc(str(k))} {_short(v)}</span>" for k, v in (c.get("checks") or {}).items()]
    nov = c.get("novelty")
    if isinstance(nov, dict):
        chips.append(f"<span class=\"chip\">copied span {_short(nov.get('span'))} tokens</span>"
                     f"<span class=\"chip\">overlap {fmt(nov.get('overlap'))}</span>")
    judge = c.get("judge")
    if isinstance(judge, dict) and "error" in judge:
        chips.append(f"<span class=\"chip error\">judge failed: {esc(str(judge['error']))}</span>")
    elif isinstance(judge, dict):
        chips += [f"<span class=\"chip judge\">{esc(str(k).replace('_', ' '))} {esc(str(v))}</span>"
                  for k, v in judge.items()]
    return "".join(chips)


def story_card(c: dict, higher: set, colours: dict[str, str]) -> str:
    flags = _flags(c, higher)
    where = " · ".join(f"{label} {esc(str(c[k]))}" for k, label in
                       (("beginning_index", "beginning"), ("sample", "sample"), ("seed", "seed")) if k in c)
    return (f"<article class=\"story\" data-flags=\"{' '.join(css_name(f) for f in flags)}\">"
            f"<div class=\"story-head\">{where}</div>"
            f"<p class=\"text\">{story_html(c.get('story', ''), c.get('cut'), c.get('spans'), colours)}</p>"
            f"<div class=\"nums\">{_numbers(c, higher)}</div></article>")


def shown(completions: list[dict], limit: int | None) -> list[dict]:
    """The completions a run shows: with a limit, each beginning's first sample before any second
    (every beginning represented, the same ones for every run), in beginning order."""
    done = [c for c in completions if isinstance(c, dict)]
    if limit is not None and len(done) > limit:
        done = sorted(done, key=lambda c: (c.get("sample", 0), c.get("beginning_index", 0)))[:limit]
    return sorted(done, key=lambda c: (c.get("beginning_index", 0), c.get("sample", 0)))


def stories(grade: dict, limit: int | None) -> str:
    """Every run's stories in a <details> of their own (the first open), with the highlight legend
    and a filter by check."""
    higher, colours = set(grade.get("scores_higher_better") or ()), check_colours(grade)
    found: dict[str, int] = {}  # flag -> stories it flags, over the page
    sections = []
    for i, run in enumerate(grade.get("runs") or []):
        every = run.get("completions") or []
        chosen = shown(every, limit)
        flags = [_flags(c, higher) for c in chosen]
        for fs in flags:
            for f in fs:
                found[f] = found.get(f, 0) + 1
        of = f"{len(chosen)} of {len(every)} stories" if len(chosen) < len(every) else f"{len(every)} stories"
        sections.append(
            f"<details class=\"run\"{' open' if i == 0 else ''}><summary><b>{esc(str(run.get('name', '?')))}</b> "
            f"<span class=\"muted\">{of} · {sum(map(bool, flags))} flagged</span> <span class=\"shown muted\">"
            f"</span></summary>{''.join(story_card(c, higher, colours) for c in chosen)}</details>")
    order = [k for k in dict.fromkeys([*(grade.get("checks") or {}), *found]) if k in found]
    legend = "".join(f"<li><span class=\"swatch flag {css_name(k)}\"></span>{esc(k)}"
                     f"<span class=\"muted\"> — {esc(description(grade, k))}</span></li>" for k in order)
    options = "".join(f"<option value=\"{css_name(k)}\">flagged by {esc(k)} ({found[k]})</option>" for k in order)
    note = (f"<p class=\"muted small\">Each run shows at most {limit} stories, each beginning's first sample "
            f"first; grade.json has them all.</p>" if limit is not None and any(
                len(r.get("completions") or []) > limit for r in grade.get("runs") or []) else "")
    return (f"<section class=\"card\" id=\"stories\"><h2>Stories</h2>{note}"
            f"<ul class=\"hl-legend\"><li><span class=\"swatch given-swatch\"></span>the beginning the model was given"
            f"</li>{legend}<li><span class=\"swatch flag multi\" style=\"{_bands(PALETTE[3:5])}\"></span>"
            f"bands: flagged by several checks</li>"
            f"</ul><div class=\"filter\" hidden><label for=\"flag-filter\">Show</label> "
            f"<select id=\"flag-filter\"><option value=\"\">all stories</option><option value=\"*\">stories with "
            f"any flag</option>{options}</select> <span id=\"filter-count\" class=\"muted\" aria-live=\"polite\">"
            f"</span></div>{''.join(sections)}</section>")


def check_colours(grade: dict) -> dict[str, str]:
    """A colour per check: the grade's checks in order, then any other a span names."""
    names = list(grade.get("checks") or {})
    for run in grade.get("runs") or []:
        for c in run.get("completions") or []:
            names += [str(s.get("check")) for s in (c.get("spans") or ()) if isinstance(s, dict) and s.get("check")]
    return {k: PALETTE[j % len(PALETTE)] for j, k in enumerate(dict.fromkeys(names))}


# ---- the page -----------------------------------------------------------------------------------------

def render_report(grade: dict, max_completions: int | None = MAX_COMPLETIONS) -> str:
    """The report page of a grade (grade.json's dict) as one self-contained HTML document; at most
    `max_completions` stories per run (None: all)."""
    names = ", ".join(str(r.get("name", "?")) for r in grade.get("runs") or [])
    top, graded = header(grade)
    css = "".join(f".{css_name(k)}{{--hl:{c}}}" for k, c in check_colours(grade).items())
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>tinygpt grade: {esc(names)}</title><style>{_asset('report.css')}{css}</style>"
            "</head><body>"
            f"{top}<main>{graded}{table(grade)}{plots(grade)}{stories(grade, max_completions)}</main>"
            f"<script>{_asset('report.js')}</script></body></html>\n")


def write_report(grade: dict, path: str | os.PathLike, max_completions: int | None = MAX_COMPLETIONS) -> Path:
    """Writes the report page to `path` atomically (a temporary file beside it, renamed over it)."""
    path = Path(path)
    text = render_report(grade, max_completions)
    with atomic_write(path) as f:
        f.write(text)
    return path
