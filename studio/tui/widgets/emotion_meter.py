"""The emotion meter: a live bar chart of the poem's EmoLex counts, the target emotions lit up."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from studio.tui.widgets.colours import blend_targets, colour_of
from trainer.common.emotions import EMOTIONS, NEUTRAL

BAR_WIDTH = 14
NAME_WIDTH = max(len(e) for e in EMOTIONS)


def meter_text(counts: dict[str, int], target: str | tuple[str, ...]) -> Text:
    """The chart as text: one bar per emotion, scaled to the largest count.

    `target` is an emotion, a blend spec such as `joy=0.70+sadness=0.30`, or a tuple of emotions;
    every one of them is highlighted.
    """
    targets = blend_targets(target)
    top = max([1, *counts.values()])
    text = Text()
    for emotion in EMOTIONS:
        count = int(counts.get(emotion, 0))
        filled = round(BAR_WIDTH * count / top)
        is_target = emotion in targets
        colour = colour_of(emotion)
        marker = "▶ " if is_target else "  "
        text.append(marker, style=f"bold {colour}" if is_target else "")
        text.append(f"{emotion:<{NAME_WIDTH}} ", style=f"bold {colour}" if is_target else "dim")
        text.append("█" * filled, style=colour if is_target else f"{colour} dim")
        text.append("·" * (BAR_WIDTH - filled), style="dim")
        text.append(f" {count:>2}\n", style="bold" if is_target else "dim")
    text.append(verdict(counts, targets), style="italic")
    return text


def verdict(counts: dict[str, int], targets: tuple[str, ...]) -> str:
    """One line saying whether the poem carries the target feelings, by the lexicon's count."""
    total = sum(counts.values())
    if targets == (NEUTRAL,):
        return "neutral: fewer emotion words is closer" if total else "no emotion words yet"
    if not total:
        return "no emotion words yet"
    best = max(counts.values())
    leaders = [e for e in EMOTIONS if counts.get(e, 0) == best]
    if len(targets) == 1:
        (target,) = targets
        if leaders == [target]:
            return f"{target} leads"
        if target in leaders:
            return f"{target} ties for the lead"
        return f"{', '.join(leaders)} leads, not {target}"
    # A blend is carried when each of its emotions outscores every emotion outside it.
    rival = max(counts.get(e, 0) for e in EMOTIONS if e not in targets)
    ahead = [t for t in targets if counts.get(t, 0) > rival]
    behind = [t for t in targets if t not in ahead]
    if not behind:
        return f"{' and '.join(targets)} lead"
    if ahead:
        return f"{' and '.join(ahead)} ahead; {' and '.join(behind)} not yet"
    tied = [t for t in targets if counts.get(t, 0) == best]
    if tied:
        return f"{' and '.join(tied)} {'ties' if len(tied) == 1 else 'tie'} for the lead"
    return f"{', '.join(leaders)} leads, not {' or '.join(targets)}"


class EmotionMeter(Static):
    """Shows `meter_text` for the poem on screen; call `show` as text streams in."""

    def on_mount(self) -> None:
        self.border_title = "Emotion meter (EmoLex)"

    def show(self, counts: dict[str, int], target: str | tuple[str, ...]) -> None:
        """Redraw the chart for these counts and target emotion, blend spec or emotions."""
        self.update(meter_text(counts, target))
