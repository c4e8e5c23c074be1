"""The report's plots (inline SVG, matplotlib): per-category bars, reward against KL, refusal against over-refusal,
each with its intervals."""

from __future__ import annotations

import io
import math


ARROWS = {"higher": "↑", "lower": "↓", "neither": ""}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg"):]                         # drop the XML prolog and DOCTYPE: inline SVG


def stage_colours(data: dict) -> dict[str, str]:
    """One colour per model, the same in the plots and in the HTML (matplotlib's tab10)."""
    return {m["stage"]: PALETTE[i % len(PALETTE)] for i, m in enumerate(data["models"])}


def plots(data: dict) -> list[tuple[str, str, str]]:
    """[(title, inline svg, caption)] — matplotlib is imported only here, the report's one heavy dependency."""
    import matplotlib

    colours = stage_colours(data)
    # svg.hashsalt: the same data gives the same SVG; svg.fonttype none: text stays text, in the page's font.
    with matplotlib.rc_context({"svg.hashsalt": "alignlab", "svg.fonttype": "none", "font.size": 9,
                                "axes.spines.top": False, "axes.spines.right": False}):
        return (_category_score_plot(data, colours) + _refusal_plot(data, colours) + _reward_kl_plot(data, colours)
                + _durability_plot(data, colours) + _category_plots(data, colours))


def _grouped_bars(ax, labels: list[str], series: dict[str, list[float | None]], colours: dict, horizontal: bool,
                  intervals: dict[str, list[list[float] | None]] | None = None):
    """Grouped bars, one group per label; `intervals` draws each bar's 95% interval as an error bar."""
    from matplotlib.ticker import PercentFormatter

    width = 0.8 / len(series)
    for i, (stage, ys) in enumerate(series.items()):
        pos = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
        ys = [math.nan if y is None else y for y in ys]
        err = None
        if intervals is not None:
            cis = [ci if ci is not None and not math.isnan(y) else [y, y] for ci, y in zip(intervals[stage], ys)]
            err = [[max(0.0, y - ci[0]) for ci, y in zip(cis, ys)], [max(0.0, ci[1] - y) for ci, y in zip(cis, ys)]]
        bars = (ax.barh if horizontal else ax.bar)(pos, ys, width, label=stage, color=colours[stage],
                                                   **({"xerr" if horizontal else "yerr": err,
                                                       "error_kw": {"lw": 0.8, "capsize": 1.5, "ecolor": "#333"}}
                                                      if err is not None else {}))
        ax.bar_label(bars, labels=["" if math.isnan(y) else f"{100 * y:.0f}" for y in ys], fontsize=6.5,
                     padding=1.5, color="#444")
    (ax.set_yticks if horizontal else ax.set_xticks)(range(len(labels)), labels)
    (ax.set_xlim if horizontal else ax.set_ylim)(0, 1.08)
    (ax.xaxis if horizontal else ax.yaxis).set_major_formatter(PercentFormatter(1.0, decimals=0))
    if horizontal:
        ax.invert_yaxis()                                      # first metric and first model on top
    # Above the plot, at most 4 per line in the narrow horizontal charts.
    ax.figure.legend(ncols=min(len(series), 4 if horizontal else 10), loc="outside upper center", frameon=False,
                     fontsize=8, handlelength=1, columnspacing=1)


def _category_score_plot(data: dict, colours: dict) -> list[tuple[str, str, str]]:
    from matplotlib.figure import Figure

    scores = data["category_scores"]
    if not scores:
        return []
    fig = Figure(figsize=(min(10.0, 2.0 + 1.3 * len(scores)), 2.9), layout="constrained")
    ax = fig.subplots()
    labels = [c.replace(" and ", " &\n").replace("resistance to ", "resistance to\n") for c in scores]
    _grouped_bars(ax, labels, {s: [scores[c][s] for c in scores] for s in colours}, colours, horizontal=False)
    ax.set_ylabel("score (100% = best)")
    return [("Per-category score", _svg(fig),
             "Mean of the category's rates, each turned so that 100% is best (1 − rate where lower is better). "
             "The table above has every number.")]


def _category_plots(data: dict, colours: dict) -> list[tuple[str, str, str]]:
    from matplotlib.figure import Figure

    out = []
    for g in data["categories"]:
        rows = [r for r in g["rows"] if r["kind"] == "rate"]
        if not rows:
            continue
        legend_lines = math.ceil(len(colours) / 4)
        fig = Figure(figsize=(3.9, 0.6 + 0.2 * legend_lines + len(rows) * (0.25 + 0.15 * len(colours))),
                     layout="constrained")
        ax = fig.subplots()
        _grouped_bars(ax, [f"{r['key']} {ARROWS[r['better']]}" for r in rows],
                      {s: [r["values"][s] for r in rows] for s in colours}, colours, horizontal=True,
                      intervals={s: [r["ci"][s] for r in rows] for s in colours})
        out.append((g["name"].capitalize(), _svg(fig), "Rates in percent; ↑ higher is better, ↓ lower is better; "
                    "whiskers: 95% interval over items where the suite gives one."))
    return out


def _reward_kl_plot(data: dict, colours: dict) -> list[tuple[str, str, str]]:
    from matplotlib.figure import Figure

    rk = data["reward_vs_kl"]
    if not rk["curves"] and not rk["points"]:
        return []
    entries = 2 * len(rk["curves"]) + len(rk["points"])            # legend lines below the axes: 2 per line
    fig = Figure(figsize=(5, 3.0 + 0.14 * math.ceil(entries / 2)), layout="constrained")
    ax = fig.subplots()
    for stage, rows in rk["curves"].items():
        for key, marker, style in (("gold_reward", "o", "-"), ("rm_score", "x", "--")):
            pts = [(r["kl"], r[key]) for r in rows if r[key] is not None]
            if not pts:
                continue
            # Per-iteration values are noisy and KL is not monotone in the step: the points, and a line through
            # their running mean (5 iterations, in step order) for the trend.
            ax.scatter(*zip(*pts), s=9, marker=marker, color=colours[stage], alpha=0.35, lw=0.8)
            window = [pts[max(0, i - 4):i + 1] for i in range(len(pts))]
            ax.plot([sum(x for x, _ in w) / len(w) for w in window], [sum(y for _, y in w) / len(w) for w in window],
                    style, color=colours[stage], label=f"{stage} training: {key}")
    for stage, p in rk["points"].items():
        if p["kl"] is not None and p["gold_reward"] is not None:
            ax.scatter([p["kl"]], [p["gold_reward"]], s=60, color=colours[stage], edgecolor="k", zorder=3,
                       label=f"{stage} (eval, KL to {p['reference']})")
    ax.set_xlabel("KL to the model it started from (nats per response)")
    ax.set_ylabel("reward")
    fig.legend(loc="outside lower center", ncols=2, frameon=False, fontsize=7)
    caption = ("Gold reward (o, solid) and the reward model's score (x, dashed) against KL during training — lines "
               "are 5-iteration running means — with each evaluated model as a large dot: where the two part is "
               "reward over-optimisation (Gao et al. 2022). rm_score is judged by the trained reward model.")
    return [("Reward against KL", _svg(fig), caption)]


REFUSAL_PAIRS = (("overrefusal_rate", "harmful_refusal_rate"), ("overrefusal_safe_rate", "refusal_unsafe_rate"))


def _refusal_plot(data: dict, colours: dict) -> list[tuple[str, str, str]]:
    from matplotlib.figure import Figure

    rows = {r["key"]: r for g in data["categories"] for r in g["rows"]}
    pairs = [(x, y) for x, y in REFUSAL_PAIRS if x in rows and y in rows]
    if not pairs:
        return []
    fig = Figure(figsize=(4.6, 3.4), layout="constrained")
    ax = fig.subplots()
    ax.scatter([0], [1], marker="*", s=160, color="gold", edgecolor="k", zorder=4, label="ideal")
    xs, ys = [0.0], [1.0]
    for x, y in pairs:
        for s, colour in colours.items():
            hx, hy, gx, gy = rows[x]["values"][s], rows[y]["values"][s], rows[x]["greedy"][s], rows[y]["greedy"][s]
            if hx is not None and hy is not None:
                ax.scatter([hx], [hy], s=60, color=colour, edgecolor="k", zorder=3,
                           label=s if len(pairs) == 1 else f"{s} ({y})")
                xs, ys = xs + [hx], ys + [hy]
                if len(colours) <= 4:                  # names on the dots while they do not pile up
                    ax.annotate(s, (hx, hy), xytext=(5, 4), textcoords="offset points", fontsize=8)
            if None not in (hx, hy, gx, gy):
                ax.scatter([gx], [gy], s=40, facecolor="none", edgecolor=colour, zorder=3)
                ax.plot([hx, gx], [hy, gy], ":", color=colour, lw=1)
                xs, ys = xs + [gx], ys + [gy]
    # Zoomed on the models (and the ideal corner), never less than a quarter of the square.
    ax.set_xlim(-0.02, max(0.25, max(xs) + 0.05))
    ax.set_ylim(min(0.75, min(ys) - 0.05), 1.02)
    ax.set_xlabel("over-refusal of harmless prompts ↓")
    ax.set_ylabel("refusal of harmful prompts ↑")
    fig.legend(loc="outside right upper", frameon=False, fontsize=7.5)
    return [("Refusal against over-refusal", _svg(fig),
             f"x: {', '.join(x for x, _ in pairs)}; y: {', '.join(y for _, y in pairs)}. Filled: sampled responses "
             "(headline); hollow: greedy. The ideal model sits at the star.")]


DURABILITY_PANELS = (("refusal of harmful requests ↑", ("harmful_refusal_rate", "refusal_unsafe_rate")),
                     ("over-refusal of harmless lookalikes ↓", ("overrefusal_rate", "overrefusal_safe_rate")),
                     ("capability ↑", ("fact_accuracy", "mc1")))


def _durability_plot(data: dict, colours: dict) -> list[tuple[str, str, str]]:
    """Each attacked model's durability curve: safety and capability against the fine-tuning attack's dose."""
    from matplotlib.figure import Figure

    curves = data.get("durability") or {}
    if not curves:
        return []
    fig = Figure(figsize=(8, 2.9), layout="constrained")
    axes = fig.subplots(1, 3, sharex=True)
    for ax, (title, candidates) in zip(axes, DURABILITY_PANELS):
        for stage, curve in curves.items():
            points = curve["points"]
            key = next((k for k in candidates if k in points[0]), None)
            if key is None:
                continue
            xs, ys = [p["dose"] for p in points], [p.get(key) for p in points]
            cis = [p.get(f"{key}_ci") or [y, y] for p, y in zip(points, ys)]
            ax.errorbar(xs, ys, yerr=[[y - c[0] for y, c in zip(ys, cis)], [c[1] - y for y, c in zip(ys, cis)]],
                        marker="o", ms=4, capsize=2, lw=1.2, color=colours.get(stage, "#333"), label=stage)
        ax.set_title(title, fontsize=8.5)
        ax.set_xscale("symlog", linthresh=10)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("attack examples")
    axes[0].axhline(0.5, color="#999", lw=0.6, ls="--")
    axes[0].legend(fontsize=7, frameon=False)
    attacks = sorted({c["attack"] for c in curves.values()})
    caption = (f"Durability: each attacked model fine-tuned on N examples of the {', '.join(attacks)} attack "
               "(alignlab's SFT loop; `alignlab redteam finetune`), then evaluated; N = 0 is the model as aligned. "
               "Bars: 95% intervals over items. Where refusal crosses the dashed line, half the harmful requests are "
               "answered.")
    return [("Durability under a fine-tuning attack", _svg(fig), caption)]
