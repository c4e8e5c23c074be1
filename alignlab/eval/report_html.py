"""The report's HTML: a self-contained page (inline CSS from report_template.html, inline SVG, no script, no URL)
rendered from the report's data."""

from __future__ import annotations

import html
from pathlib import Path
from string import Template

from alignlab.eval.report_plots import ARROWS, plots, stage_colours
from alignlab.eval.trust import goodness


TEMPLATE = Path(__file__).with_name("report_template.html")


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f}%" if kind == "rate" else f"{value:.3f}"


def _tint(key: str, value: float | None) -> str:
    good = goodness(key, value) if value is not None else None
    return "" if good is None else f' style="background:hsl({120 * good:.0f},70%,90%)"'




def table_html(data: dict) -> str:
    stages = [m["stage"] for m in data["models"]]
    head = "".join(f"<th>{swatch(data, s)}{html.escape(s)}</th>" for s in stages)
    rows = [f"<thead><tr><th>metric</th>{head}</tr></thead><tbody>"]
    regressed = {(r["stage"], r["metric"]): r["baseline"] for r in
                 (data["regression"]["regressions"] if data["regression"] else [])}
    for group in data["categories"]:
        rows.append(f'<tr class="cat"><th colspan="{len(stages) + 1}">{html.escape(group["name"].capitalize())}'
                    f' <span>{html.escape(group["description"])}</span></th></tr>')
        if not group["rows"]:
            rows.append(f'<tr class="none"><td colspan="{len(stages) + 1}">not measured by this run\'s suite</td></tr>')
        for row in group["rows"]:
            known = [v for v in row["values"].values() if v is not None]
            best = None                   # the best model in bold, where there is a direction and a choice
            if len(known) > 1 and row["better"] != "neither":
                best = max(known) if row["better"] == "higher" else min(known)
            cells = [_cell(row, s, best, regressed.get((s, row["key"]))) for s in stages]
            rows.append(f'<tr><td class="key" title="{html.escape(row["description"])}">'
                        f'{html.escape(row["key"])} {ARROWS[row["better"]]}<small>{html.escape(row["description"])}'
                        f'</small></td>{"".join(cells)}</tr>')
    return f'<table class="metrics">{"".join(rows)}</tbody></table>'


def _cell(row: dict, stage: str, best: float | None, baseline: float | None) -> str:
    """Headline value (bold when the best), its 95% interval and items, greedy below, the baseline where it
    regressed."""
    value, greedy, kind = row["values"][stage], row["greedy"][stage], row["kind"]
    ci, items = row["ci"][stage], row["items"][stage]
    strong = ' class="best"' if value is not None and value == best else ""
    notes = ""
    if ci is not None:
        notes += f"<small>[{_fmt(ci[0], kind)}, {_fmt(ci[1], kind)}]" + (f" · {items} items" if items else "") + \
            "</small>"
    notes += f"<small>greedy {_fmt(greedy, kind)}</small>" if greedy is not None else ""
    if baseline is not None:
        notes += f'<small class="was">✗ baseline {_fmt(baseline, kind)}</small>'
    return f'<td{_tint(row["key"], value)}><b{strong}>{_fmt(value, kind)}</b>{notes}</td>'


def swatch(data: dict, stage: str) -> str:
    return f'<i class="sw" style="background:{stage_colours(data)[stage]}"></i>'


def judges_caption(data: dict) -> str:
    """'Judge: NAME — how good it is' under every figure; several judges are listed with their models."""
    by_judge: dict[str, list[str]] = {}
    notes = {}
    for m in data["models"]:
        by_judge.setdefault(m["judge"]["name"], []).append(m["stage"])
        notes[m["judge"]["name"]] = m["judge"]["note"]
    parts = [f"<b>{html.escape(j)}</b> — {html.escape(notes[j])}" + ("" if len(by_judge) == 1 else
                                                                    f" ({html.escape(', '.join(ss))})")
             for j, ss in by_judge.items()]
    return '<p class="judge">Judge: ' + "; ".join(parts) + "</p>"


def _message_html(messages: list[dict]) -> str:
    return "".join(f'<div class="msg {html.escape(m["role"])}"><i>{html.escape(m["role"])}</i> '
                   f'{html.escape(m["content"])}</div>' for m in messages)


def examples_html(data: dict) -> str:
    if not data["examples"]:
        return "<p>No per-prompt records (RUN_DIR/&lt;stage&gt;/eval.records.jsonl) found.</p>"
    out = []
    for ex in data["examples"]:
        cells = []
        for stage, r in ex["responses"].items():
            if r["correct"] is None:
                verdict, cls = html.escape(str(r["labels"]["judgement"])), "neutral"
            else:
                verdict = ("✓ aligned" if r["correct"] else "✗ not aligned") + f" · reward {r['reward']:.2f}"
                cls = "ok" if r["correct"] else "bad"
            flags = "".join(f" · {html.escape(k)}" for k, v in r["labels"].items() if v is True)
            cells.append(f'<div class="resp {cls}"><h4>{swatch(data, stage)}{html.escape(stage)}</h4>'
                         f'<p>{html.escape(r["response"])}</p><footer>{verdict}{flags}</footer></div>')
        out.append(f'<div class="example"><div class="prompt"><span class="fam">{html.escape(ex["family"])}</span>'
                   f'<code>{html.escape(ex["id"])}</code>{_message_html(ex["messages"])}</div>'
                   f'<div class="resps">{"".join(cells)}</div></div>')
    return "".join(out)


def regression_html(data: dict) -> str:
    reg = data["regression"]
    if reg is None:
        return ("<p>No baseline given: run <code>alignlab report RUN_DIR --baseline OTHER_RUN_DIR</code> to "
                "compare the safety metrics of two runs.</p>")
    head = (f'<p>Baseline <code>{html.escape(reg["baseline"])}</code>; stages compared: '
            f'{html.escape(", ".join(reg["stages"]) or "none in common")}; tolerance {reg["tolerance"]} '
            f'(absolute).</p>')
    if reg["missing_stages"]:
        head += (f'<p class="fail">Stages of the baseline missing from this run (not checked): '
                 f'{html.escape(", ".join(reg["missing_stages"]))}.</p>')
    if not reg["regressions"]:
        return head + '<p class="pass">✓ No safety metric got worse beyond the tolerance.</p>'
    rows = "".join(f'<tr><td>{html.escape(r["stage"])}</td><td>{html.escape(r["metric"])} {ARROWS[r["better"]]}</td>'
                   f'<td>{r["baseline"]:.3f}</td><td>{r["current"]:.3f}</td>'
                   f'<td>{r["current"] - r["baseline"]:+.3f}</td></tr>' for r in reg["regressions"])
    return (head + f'<p class="fail">✗ {len(reg["regressions"])} safety metric(s) got worse.</p>'
            f'<table class="regress"><tr><th>stage</th><th>metric</th><th>baseline</th><th>this run</th>'
            f'<th>change</th></tr>{rows}</table>')


def models_html(data: dict) -> str:
    rows = []
    for m in data["models"]:
        settings = m["settings"]
        sampling = ", ".join(f"{k} {settings[k]}" for k in ("temperature", "num_samples", "max_new_tokens")
                             if k in settings)
        rows.append(f'<tr><td>{swatch(data, m["stage"])}<b>{html.escape(m["stage"])}</b></td>'
                    f'<td><code>{html.escape(m["model"] or "–")}</code></td>'
                    f'<td>{m["count"] if m["count"] is not None else "–"}</td><td>{html.escape(sampling)}</td>'
                    f'<td>{html.escape(m["judge"]["name"])}<small>{html.escape(m["judge"]["note"])}</small></td></tr>')
    return ('<table class="models"><tr><th>stage</th><th>model</th><th>prompts</th><th>sampling</th><th>judge</th>'
            f'</tr>{"".join(rows)}</table>')


def other_stages_html(data: dict) -> str:
    if not data["other_stages"]:
        return ""
    items = "".join(f'<li><b>{html.escape(s)}</b>: ' + ", ".join(f"{html.escape(k)} {_fmt(v, 'number')}"
                                                                for k, v in nums.items()) + "</li>"
                    for s, nums in data["other_stages"].items())
    return f"<h2>Other stages</h2><ul>{items}</ul>"


def render_html(data: dict) -> str:
    """The self-contained page: inline CSS (report_template.html) and inline SVG plots, no script, no URL."""
    figures = "".join(f'<figure><figcaption><b>{html.escape(title)}</b></figcaption>{svg}'
                      f'<p class="caption">{html.escape(caption)}</p>{judges_caption(data)}</figure>'
                      for title, svg, caption in plots(data))
    return Template(TEMPLATE.read_text()).substitute(
        title=html.escape(f"Alignment report — {Path(data['run_dir']).name}"),
        run_dir=html.escape(data["run_dir"]), generated=html.escape(data["generated"]),
        models=models_html(data), regression=regression_html(data), table=table_html(data),
        judges=judges_caption(data), figures=figures, examples=examples_html(data),
        other_stages=other_stages_html(data))
