"""The strength chart of `poetstudio eval`: fidelity (both judges) and distinct-1 against strength.

One line per emotion and a thick black line for their mean, one panel per figure; the rule's
distinct-1 floor and the strength it picks are drawn in. matplotlib is the optional `plot` extra;
the figure is drawn on an Agg canvas object, so no global backend is switched and no display is
needed.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable
from pathlib import Path

from trainer.common.emotions import EMOTIONS
from trainer.evaluation.metrics import MIN_POEM_DISTINCT_1, ModelEval, StrengthChoice

PLOT_HINT = "pip install -e '.[plot]'"

# (title, the row's figure, the rule's floor to draw): None figures are left out of the line.
_PANELS: tuple[tuple[str, Callable[[ModelEval], float | None], float | None], ...] = (
    ("EmoLex fidelity", lambda r: r.fidelity, None),
    ("semantic judge fidelity", lambda r: r.judge_fidelity, None),
    (
        "distinct-1 within a poem (dashed: the rule's floor)",
        lambda r: r.poem_distinct_1,
        MIN_POEM_DISTINCT_1,
    ),
)


def plot_available() -> bool:
    """Whether matplotlib (the `plot` extra) is installed."""
    return importlib.util.find_spec("matplotlib") is not None


def write_plot(results: list[ModelEval], choice: StrengthChoice, path: Path) -> Path | None:
    """Draw the chart of the swept emotion rows into a PNG at `path`; None if nothing was swept."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from trainer.common.atomic import atomic_write_bytes

    rows = [r for r in results if r.strength is not None and r.target in EMOTIONS]
    if not rows:
        return None
    panels = [panel for panel in _PANELS if any(panel[1](r) is not None for r in rows)]
    figure = Figure(figsize=(5 * len(panels), 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    strengths = sorted({r.strength for r in rows if r.strength is not None})
    for ax, (title, value, floor) in zip(axes, panels, strict=True):
        for emotion in EMOTIONS:
            points = sorted(
                (r.strength, value(r)) for r in rows if r.target == emotion and value(r) is not None
            )
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", linewidth=1, label=emotion)
        means = []
        for s in strengths:
            values = [value(r) for r in rows if r.strength == s and value(r) is not None]
            if values:
                means.append((s, sum(values) / len(values)))
        if means and len({r.target for r in rows}) > 1:  # one emotion's line is its mean
            ax.plot(*zip(*means, strict=True), color="black", linewidth=3, label="mean")
        if floor is not None:
            ax.axhline(floor, color="grey", linestyle="--", linewidth=1)
        if choice.strength is not None:
            ax.axvline(choice.strength, color="grey", linestyle=":", linewidth=1.5, label="picked")
        ax.set_title(title)
        ax.set_xlabel("guidance strength")
        ax.set_ylim(0, 1)
        ax.set_xticks(strengths)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small", ncol=2)
    picked = "none" if choice.strength is None else f"{choice.strength:g}"
    figure.suptitle(f"poetstudio eval: strength sweep (picked: {picked}, by {choice.score})")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())
    return path
