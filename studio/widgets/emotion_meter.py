"""The emotion meter: a live bar chart of the poem's EmoLex counts, the target emotion lit up."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from studio.widgets.colours import colour_of
from trainer.emotions import EMOTIONS, NEUTRAL

BAR_WIDTH = 14
NAME_WIDTH = max(len(e) for e in EMOTIONS)


def meter_text(counts: dict[str, int], target: str) -> Text:
    """The chart as text: one bar per emotion, scaled to the largest count."""
    top = max([1, *counts.values()])
    text = Text()
    for emotion in EMOTIONS:
        count = int(counts.get(emotion, 0))
        filled = round(BAR_WIDTH * count / top)
        is_target = emotion == target
        colour = colour_of(emotion)
        marker = "▶ " if is_target else "  "
        text.append(marker, style=f"bold {colour}" if is_target else "")
        text.append(f"{emotion:<{NAME_WIDTH}} ", style=f"bold {colour}" if is_target else "dim")
        text.append("█" * filled, style=colour if is_target else f"{colour} dim")
        text.append("·" * (BAR_WIDTH - filled), style="dim")
        text.append(f" {count:>2}\n", style="bold" if is_target else "dim")
    text.append(_verdict(counts, target), style="italic")
    return text


def _verdict(counts: dict[str, int], target: str) -> str:
    """One line saying whether the poem carries the target feeling, by the lexicon's count."""
    total = sum(counts.values())
    if target == NEUTRAL:
        return "neutral: fewer emotion words is closer" if total else "no emotion words yet"
    if not total:
        return "no emotion words yet"
    best = max(counts.values())
    leaders = [e for e in EMOTIONS if counts.get(e, 0) == best]
    if leaders == [target]:
        return f"{target} leads"
    if target in leaders:
        return f"{target} ties for the lead"
    return f"{', '.join(leaders)} leads, not {target}"


class EmotionMeter(Static):
    """Shows `meter_text` for the poem on screen; call `show` as text streams in."""

    def on_mount(self) -> None:
        self.border_title = "Emotion meter (EmoLex)"

    def show(self, counts: dict[str, int], target: str) -> None:
        """Redraw the chart for these counts and target emotion."""
        self.update(meter_text(counts, target))
