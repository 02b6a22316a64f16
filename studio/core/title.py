"""A title for a poem: its most striking line, by a fixed rule so the same poem gets the same title.

The rule: every non-empty line is scored by its words.
- A *vivid* word is alphabetic, at least 4 letters long, and not a common function word;
  each distinct vivid word scores 1, and 1 more if it has 7 letters or more.
- A line of fewer than 3 or more than 9 words loses 1 point: titles read best at that length.
The highest-scoring line wins; ties go to the earlier line. The title is that line without its
leading and trailing punctuation, cut to 7 words (with "…"), with its first letter capitalised.
A poem with no words is "Untitled".
"""

from __future__ import annotations

import re

UNTITLED = "Untitled"
MAX_WORDS = 7
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
# Function words: frequent in every poem, so never what makes a line striking.
_COMMON = frozenset(
    re.findall(
        r"\w+",
        """
        about above after again also among and are been before being below between both but can
        could does doing down during each even ever from have having here hers herself him
        himself into its itself just like more most much must myself never now once only other
        ought ours over same shall should some such than that their theirs them themselves then
        there these they thine this those thou through thus thy till too under unto until upon
        very was were what when where which while whom whose will with within without would yet
        you your yours yourself thee hath doth shalt wilt art
        """,
    )
)


def _score(line: str) -> float:
    words = _WORD.findall(line)
    vivid = {w.lower() for w in words if len(w) >= 4 and w.lower() not in _COMMON}
    score = float(sum(2 if len(w) >= 7 else 1 for w in vivid))
    if not 3 <= len(words) <= 9:
        score -= 1
    return score


def title_for(text: str) -> str:
    """The poem's title: its most striking line by the rule in this module's docstring."""
    lines = [line.strip() for line in text.splitlines() if _WORD.search(line)]
    if not lines:
        return UNTITLED
    best = max(lines, key=lambda line: (_score(line), -lines.index(line)))
    words = best.split()
    cut = len(words) > MAX_WORDS
    title = " ".join(words[:MAX_WORDS]).strip(" \t.,;:!?-–—\"'“”‘’")
    if not title:
        return UNTITLED
    title = title[0].upper() + title[1:]
    return title + "…" if cut else title
