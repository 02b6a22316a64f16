"""The charts of `poetstudio eval`, PNGs beside its reports.

The strength chart: fidelity (both judges) and distinct-1 against strength, one line per emotion
and a thick black line for their mean, one panel per figure; the rule's distinct-1 floor and the
strength it picks are drawn in. The fidelity chart: per emotion, bars for the base control, the
emotion model alone and the model at the picked strength, one panel per judge.

matplotlib is the optional `plot` extra; each figure is drawn on an Agg canvas object, so no
global backend is switched and no display is needed.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Callable
from pathlib import Path

from trainer.common.emotions import EMOTIONS, NEUTRAL
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


# The fidelity chart's panels: one per judge; a judge no row has is left out.
_JUDGES: tuple[tuple[str, Callable[[ModelEval], float | None]], ...] = (
    ("EmoLex", lambda r: r.fidelity),
    ("semantic judge", lambda r: r.judge_fidelity),
)
_BAR_COLOURS = ("#9e9e9e", "#90caf9", "#1565c0")


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
            values = [v for r in rows if r.strength == s and (v := value(r)) is not None]
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


def write_fidelity_plot(
    results: list[ModelEval], picked: float | None, base_name: str, path: Path
) -> Path | None:
    """Draw fidelity per target emotion into a PNG at `path`: the base control (the rows named
    `base_name`), each emotion model alone (strength 0) and at the `picked` strength, one panel
    per judge. None, and no file, when no row scores a model against an emotion."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from trainer.common.atomic import atomic_write_bytes

    targets = [t for t in (*EMOTIONS, NEUTRAL) if any(r.target == t for r in results)]
    models = [r for r in results if r.name != base_name and r.target in targets]
    if not models:
        return None
    series = _fidelity_series(results, models, picked, base_name, targets)
    panels = [(t, v) for t, v in _JUDGES if any(v(r) is not None for r in results)]
    figure = Figure(figsize=(max(7.0, 0.9 * len(targets) + 2), 3.2 * len(panels) + 0.8))
    figure.set_layout_engine("constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    width = 0.8 / len(series)
    for ax, (judge, value) in zip(axes, panels, strict=True):
        # A target no series has a figure for (neutral, for the semantic judge) is left out.
        shown = [
            i
            for i in range(len(targets))
            if any(_value(rows[i], value) is not None for _, rows in series)
        ]
        for index, ((label, rows), colour) in enumerate(zip(series, _BAR_COLOURS, strict=False)):
            offset = (index - (len(series) - 1) / 2) * width
            points = [
                (position + offset, figure_)
                for position, i in enumerate(shown)
                if (figure_ := _value(rows[i], value)) is not None
            ]
            if points:
                xs, ys = zip(*points, strict=True)
                bars = ax.bar(xs, ys, width, label=label, color=colour)
                # Printed figures tell a 0% bar from a missing one.
                ax.bar_label(bars, labels=[f"{100 * y:.0f}" for y in ys], fontsize=6, padding=1)
        ax.set_title(f"{judge} fidelity: share of poems labelled the target emotion (%)")
        ax.set_xticks(range(len(shown)), [targets[i] for i in shown])
        ax.set_ylim(0, 1.08)
        ax.yaxis.set_major_formatter(lambda y, _: f"{100 * y:.0f}%")
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=len(series), fontsize="small")
    figure.suptitle("poetstudio eval: fidelity per emotion against the base control")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _value(row: ModelEval | None, value: Callable[[ModelEval], float | None]) -> float | None:
    return None if row is None else value(row)


def _fidelity_series(
    results: list[ModelEval],
    models: list[ModelEval],
    picked: float | None,
    base_name: str,
    targets: list[str],
) -> list[tuple[str, list[ModelEval | None]]]:
    """The chart's bar series, each a label and one row (or None) per target."""

    def row_for(rows: list[ModelEval], target: str, strength: float | None) -> ModelEval | None:
        matches = [r for r in rows if r.target == target]
        exact = [r for r in matches if r.strength == strength]
        unswept = [r for r in matches if r.strength is None]  # neutral, or no sweep at all
        found = exact or unswept
        return found[0] if found else None

    base = [r for r in results if r.name == base_name]
    series: list[tuple[str, list[ModelEval | None]]] = []
    if base:
        series.append((base_name, [row_for(base, t, None) for t in targets]))
    swept = sorted({r.strength for r in models if r.strength is not None})
    if picked is None and swept:
        picked = swept[-1]  # no strength passed the rule: show the strongest swept
    if picked is not None and picked != 0.0 and 0.0 in swept:
        alone = [r for r in models if r.strength == 0.0]
        series.append(
            ("emotion model alone (strength 0)", [row_for(alone, t, 0.0) for t in targets])
        )
    label = "emotion model" if picked is None else f"emotion model, strength {picked:g}"
    series.append((label, [row_for(models, t, picked) for t in targets]))
    return series
