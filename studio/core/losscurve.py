"""What a training job's loss chart shows: the smoothed training loss per step as a line on the
left axis, and the validation perplexity of each evaluation as points on the right one.

Drawn on a plotext figure (the plotext module, or the studio widget's own figure), so that the
studio's chart and `poetstudio jobs follow` draw the same curve. Nothing here imports plotext.
"""

from __future__ import annotations

from typing import Any

from trainer.training.events import JobProgress

LOSS_COLOUR = "cyan"
PPL_COLOUR = "orange"


def chart_title(emotion: str, job_id: str) -> str:
    """The chart's title: which job it is."""
    return f"{emotion or '?'} {job_id}: training loss ─, validation ppl ●"


def thinned(points: list[tuple[int, float]], most: int) -> list[tuple[int, float]]:
    """At most about `most` of `points`, evenly spread, the last one always kept."""
    if len(points) <= most:
        return points
    kept = points[:: -(-len(points) // max(1, most))]
    return kept if kept[-1] == points[-1] else [*kept, points[-1]]


def draw_loss_curve(plt: Any, progress: JobProgress, title: str, width: int) -> None:
    """Draw `progress`'s curve on `plt`, a plotext figure `width` columns wide, data cleared."""
    plt.title(title if progress.curve else f"{title} (no step yet)")
    plt.xlabel("step")
    plt.ylabel("loss")
    plt.ylabel("val ppl", yside="right")
    if progress.curve:
        # A braille cell holds two points across: more than that only costs drawing time.
        steps, losses = zip(*thinned(progress.curve, 2 * width), strict=True)
        plt.plot(steps, losses, marker="braille", color=LOSS_COLOUR)
    if progress.evals:
        steps, ppls = zip(*progress.evals, strict=True)
        plt.scatter(steps, ppls, marker="●", color=PPL_COLOUR, yside="right")
    last = max([progress.total_steps, progress.step, *(s for s, _ in progress.evals)])
    plt.xlim(0, max(1, last))
