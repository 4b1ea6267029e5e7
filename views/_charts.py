"""Plotly figures for the pages. User text (class names) is HTML-escaped, because plotly reads a few tags."""
from __future__ import annotations

import html

import plotly.graph_objects as go

COLOURS = {"train": "#4C78A8", "validation": "#F58518", "test": "#54A24B", "frozen": "#B0B7C3",
           "trainable": "#E45756", "partly trainable": "#F2A65A"}
PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D"]
_LAYOUT = dict(margin=dict(l=10, r=10, t=50, b=10),
               legend=dict(orientation="h", yanchor="top", y=-0.18, x=0, traceorder="normal"),
               font=dict(size=13), hoverlabel=dict(namelength=-1))


def t(text) -> str:
    """Text for a plotly label: plotly renders <b>, <a href>, … so user text is HTML-escaped."""
    return html.escape(str(text), quote=True)


def wrapped(text, width: int = 14) -> str:
    """An escaped label broken into lines of about ``width`` characters, so long class names are never cut."""
    import textwrap

    return "<br>".join(t(line) for line in textwrap.wrap(str(text), width, break_long_words=True)) or t(text)


def task_accuracies(epochs: list[dict]) -> list[str]:
    """The tasks of a multi-task run's epochs: keys '<task>_accuracy' beside no plain 'accuracy'."""
    if any(e.get("accuracy") is not None for e in epochs):
        return []
    keys = dict.fromkeys(k[:-len("_accuracy")] for e in epochs for k in e
                         if k.endswith("_accuracy") and not k.startswith("val_") and e[k] is not None)
    return list(keys)


def class_counts(rows: list[dict]) -> go.Figure:
    """Images per class, stacked by split."""
    fig = go.Figure()
    names = [t(r["class"]) for r in rows]
    for split in ("train", "validation", "test"):
        fig.add_bar(x=names, y=[r[split] for r in rows], name=split, marker_color=COLOURS[split],
                    hovertemplate="%{x}: %{y} " + split + " images<extra></extra>")
    fig.update_layout(barmode="stack", title="Images per class", yaxis_title="images", height=340, **_LAYOUT)
    return fig


def _two_panels(titles: tuple[str, str], end: float | None = None) -> dict:
    """A layout with two side-by-side panels (built as a plain dict: make_subplots is ~0.3 s per call)."""
    # No axis title: the panel titles say "per epoch", so the legend below never sits on an axis title.
    x = dict(range=[0.5, end] if end else None, dtick=1 if end and end < 25 else None)
    return dict(
        xaxis=dict(domain=[0, 0.46], anchor="y", **x), xaxis2=dict(domain=[0.54, 1], anchor="y2", **x),
        yaxis=dict(anchor="x", rangemode="tozero"), yaxis2=dict(anchor="x2", rangemode="tozero"),
        annotations=[dict(text=titles[0], x=0.23, y=1.0, xref="paper", yref="paper", showarrow=False,
                          xanchor="center", yanchor="bottom", font=dict(size=14)),
                     dict(text=titles[1], x=0.77, y=1.0, xref="paper", yref="paper", showarrow=False,
                          xanchor="center", yanchor="bottom", font=dict(size=14))],
        shapes=[], height=360, **_LAYOUT)


def training_curves(epochs: list[dict], fine_tune_start: float | None, total_epochs: int | None) -> go.Figure:
    """Loss and accuracy per epoch (training solid, validation dashed); the fine-tuning phase shaded."""
    if len(epochs) == 1 and epochs[0].get("phase") == "prototypes":
        return prototype_accuracy(epochs[0])
    x = [e["epoch"] for e in epochs]
    end = max([total_epochs or 0] + x + [1]) + 0.5
    layout = _two_panels(("Loss per epoch (lower is better)", "Accuracy per epoch (higher is better)"), end)
    layout["yaxis2"]["range"] = [0, 1.02]
    data = []
    tasks = task_accuracies(epochs)
    series = [("", "loss", "loss", "#4C78A8")]
    series += ([("2", f"{task}_accuracy", f"{t(task)} accuracy", PALETTE[(i + 2) % len(PALETTE)])
                for i, task in enumerate(tasks)] if tasks else [("2", "accuracy", "accuracy", "#4C78A8")])
    for axis, metric, label, colour in series:
        for prefix, name, dash in (("", "training", "solid"), ("val_", "validation", "dash")):
            y = [e.get(prefix + metric) for e in epochs]
            if any(v is not None for v in y):
                data.append(dict(type="scatter", mode="lines+markers", x=x, y=y, name=f"{name} {label}",
                                 xaxis="x" + axis, yaxis="y" + axis,
                                 line=dict(dash=dash, color=colour if tasks and axis else
                                           ("#4C78A8" if prefix == "" else "#F58518"))))
    if fine_tune_start is not None:
        for axis in ("", "2"):
            layout["shapes"] += [
                dict(type="rect", xref="x" + axis, yref=f"y{axis} domain", x0=fine_tune_start, x1=end, y0=0, y1=1,
                     fillcolor="#E45756", opacity=0.08, line=dict(width=0)),
                dict(type="line", xref="x" + axis, yref=f"y{axis} domain", x0=fine_tune_start, x1=fine_tune_start,
                     y0=0, y1=1, line=dict(color="#E45756", dash="dot"))]
        layout["annotations"].append(dict(x=fine_tune_start, y=0.02, xref="x2", yref="y2 domain",
                                          text=" fine-tuning", showarrow=False, xanchor="left",
                                          font=dict(color="#E45756")))
    return go.Figure(dict(data=data, layout=layout))


def prototype_accuracy(row: dict) -> go.Figure:
    """A few-shot run without a learned projection trains nothing: how often the nearest prototype is right."""
    bars = [(name, row.get(key)) for name, key in (("training images", "accuracy"),
                                                    ("validation images", "val_accuracy")) if row.get(key) is not None]
    fig = go.Figure(go.Bar(x=[v for _, v in bars], y=[n for n, _ in bars], orientation="h",
                           marker_color=[COLOURS["train"], COLOURS["validation"]][:len(bars)],
                           text=[f"{v:.0%}" for _, v in bars], textposition="auto",
                           hovertemplate="%{y}: %{x:.1%} classified by the nearest prototype<extra></extra>"))
    fig.update_layout(title="Images whose nearest prototype is their own class (nothing else was trained)",
                      xaxis=dict(range=[0, 1], tickformat=".0%"), height=220, **_LAYOUT)
    return fig


def layer_blocks(blocks: list[dict]) -> go.Figure:
    """The backbone's blocks in order, bar height = parameters, coloured frozen / trainable."""
    fig = go.Figure()
    for status in ("frozen", "partly trainable", "trainable"):
        chosen = [b for b in blocks if b["status"] == status]
        if chosen:
            fig.add_bar(x=[t(b["block"]) for b in chosen], y=[b["params"] for b in chosen], name=status,
                        marker_color=COLOURS[status], customdata=[[b["layers"], b["trainable_params"]] for b in chosen],
                        hovertemplate="%{x}: %{y:,} parameters in %{customdata[0]} layers, "
                                      "%{customdata[1]:,} trainable<extra></extra>")
    fig.update_layout(title="Backbone blocks, input (left) to output (right)", yaxis_title="parameters",
                      height=340, barmode="overlay", **_LAYOUT)
    fig.update_xaxes(categoryorder="array", categoryarray=[t(b["block"]) for b in blocks])
    return fig


def confusion(matrix: list[list[int]], classes: list[str]) -> go.Figure:
    """Counts of true (rows) × predicted (columns) classes; long class names wrap instead of being cut."""
    names = [wrapped(c) for c in classes]
    full = [[t(true), t(pred)] for true in classes for pred in classes]
    fig = go.Figure(go.Heatmap(z=matrix, x=names, y=names, colorscale="Blues", text=matrix, texttemplate="%{text}",
                               customdata=[full[i * len(classes):(i + 1) * len(classes)] for i in range(len(classes))],
                               hovertemplate="true %{customdata[0]}, predicted %{customdata[1]}: %{z} images"
                                             "<extra></extra>", showscale=False))
    lines = max([n.count("<br>") + 1 for n in names] + [1])
    fig.update_layout(title="Confusion matrix", xaxis_title="predicted class", yaxis_title="true class",
                      yaxis_autorange="reversed", height=140 + 18 * lines + 40 * max(3, len(classes)), **_LAYOUT)
    fig.update_xaxes(automargin=True, tickangle=0)
    fig.update_yaxes(automargin=True)
    return fig


def reliability(bins: list[dict]) -> go.Figure:
    """The reliability diagram: per confidence bin, the share right (bars) against the diagonal of perfect trust."""
    mid = [(b["low"] + b["high"]) / 2 for b in bins]
    fig = go.Figure(go.Bar(x=mid, y=[b["accuracy"] for b in bins], width=[b["high"] - b["low"] for b in bins],
                           name="share right", customdata=[[b["count"], b["confidence"]] for b in bins],
                           hovertemplate="confidence %{customdata[1]:.0%}: right %{y:.0%} of %{customdata[0]} "
                                         "images<extra></extra>"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash"}, name="perfect", hoverinfo="skip"))
    fig.update_layout(title="Reliability diagram", xaxis_title="confidence", yaxis_title="share right",
                      xaxis_range=[0, 1], yaxis_range=[0, 1], height=320, showlegend=False, **_LAYOUT)
    fig.update_xaxes(tickformat=".0%")
    fig.update_yaxes(tickformat=".0%")
    return fig


def embedding(points: list[dict]) -> go.Figure:
    fig = go.Figure()
    domains = sorted({p.get("domain") or "data" for p in points})
    symbols = {d: s for d, s in zip(domains, ("circle", "x", "diamond", "square"))}
    labels = list(dict.fromkeys(str(p.get("label")) for p in points))
    for label in labels:
        for domain in domains:
            chosen = [p for p in points if str(p.get("label")) == label and (p.get("domain") or "data") == domain]
            if not chosen:
                continue
            name = t(label if label != "None" else "no label") + (f" ({domain})" if len(domains) > 1 else "")
            fig.add_scatter(x=[p["x"] for p in chosen], y=[p["y"] for p in chosen], mode="markers", name=name,
                            marker=dict(symbol=symbols[domain], size=8, opacity=0.8),
                            text=[t(p.get("name", "")) for p in chosen],
                            hovertemplate="%{text}<extra>" + name + "</extra>")
    fig.update_layout(title="Each dot is one image; nearby dots look alike to the model", height=460,
                      xaxis=dict(showticklabels=False, title=""), yaxis=dict(showticklabels=False, title=""), **_LAYOUT)
    return fig


def top_k(pairs: list[tuple[str, float]], title: str = "Most likely classes") -> go.Figure:
    pairs = list(reversed(pairs))
    fig = go.Figure(go.Bar(x=[p for _, p in pairs], y=[wrapped(c, 24) for c, _ in pairs], orientation="h",
                           marker_color="#4C78A8", text=[f"{p:.0%}" for _, p in pairs], textposition="auto",
                           customdata=[t(c) for c, _ in pairs], hovertemplate="%{customdata}: %{x:.1%}<extra></extra>"))
    fig.update_layout(xaxis=dict(range=[0, 1], tickformat=".0%"), height=100 + 40 * len(pairs),
                      title=t(title), **_LAYOUT)
    fig.update_yaxes(automargin=True)
    return fig


def compare_curves(rows: list[dict], names: dict[str, str]) -> go.Figure:
    """Validation loss and accuracy of several runs, overlaid."""
    end = max([r["epoch"] for r in rows] + [1]) + 0.5
    layout = _two_panels(("Validation loss per epoch", "Validation accuracy per epoch"), end)
    layout["yaxis2"]["range"] = [0, 1.02]
    data = []
    for axis, metric in (("", "val_loss"), ("2", "val_accuracy")):
        for i, (run_id, name) in enumerate(names.items()):
            chosen = [r for r in rows if r["run"] == run_id and r["metric"] == metric]
            if chosen:
                data.append(dict(type="scatter", mode="lines+markers", x=[r["epoch"] for r in chosen],
                                 y=[r["value"] for r in chosen], name=t(name), legendgroup=run_id,
                                 showlegend=axis == "", xaxis="x" + axis, yaxis="y" + axis,
                                 line=dict(color=PALETTE[i % len(PALETTE)])))
    layout["height"] = 340
    return go.Figure(dict(data=data, layout=layout))
