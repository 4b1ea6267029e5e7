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
    x = dict(title=dict(text="epoch"), range=[0.5, end] if end else None, dtick=1 if end and end < 25 else None)
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
    x = [e["epoch"] for e in epochs]
    end = max([total_epochs or 0] + x + [1]) + 0.5
    layout = _two_panels(("Loss (lower is better)", "Accuracy (higher is better)"), end)
    layout["yaxis2"]["range"] = [0, 1.02]
    data = []
    for axis, metric in (("", "loss"), ("2", "accuracy")):
        for prefix, name, dash, colour in (("", "training", "solid", "#4C78A8"),
                                           ("val_", "validation", "dash", "#F58518")):
            y = [e.get(prefix + metric) for e in epochs]
            if any(v is not None for v in y):
                data.append(dict(type="scatter", mode="lines+markers", x=x, y=y, name=f"{name} {metric}",
                                 xaxis="x" + axis, yaxis="y" + axis, line=dict(dash=dash, color=colour)))
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
    names = [t(c) for c in classes]
    fig = go.Figure(go.Heatmap(z=matrix, x=names, y=names, colorscale="Blues", text=matrix, texttemplate="%{text}",
                               hovertemplate="true %{y}, predicted %{x}: %{z} images<extra></extra>"))
    fig.update_layout(title="Confusion matrix", xaxis_title="predicted class", yaxis_title="true class",
                      yaxis_autorange="reversed", height=120 + 40 * max(3, len(classes)), **_LAYOUT)
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


def top_k(pairs: list[tuple[str, float]]) -> go.Figure:
    pairs = list(reversed(pairs))
    fig = go.Figure(go.Bar(x=[p for _, p in pairs], y=[t(c) for c, _ in pairs], orientation="h",
                           marker_color="#4C78A8", text=[f"{p:.0%}" for _, p in pairs], textposition="auto",
                           hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_layout(xaxis=dict(range=[0, 1], tickformat=".0%"), height=80 + 40 * len(pairs),
                      title="Most likely classes", **_LAYOUT)
    return fig


def compare_curves(rows: list[dict], names: dict[str, str]) -> go.Figure:
    """Validation loss and accuracy of several runs, overlaid."""
    end = max([r["epoch"] for r in rows] + [1]) + 0.5
    layout = _two_panels(("Validation loss", "Validation accuracy"), end)
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
