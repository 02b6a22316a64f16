"""A candidate line's scores, as `poetstudio suggest --json` reports them.

- `logprob`: the emotion model's log-probability of the line's tokens, its newline included
  (`logprob_per_token` divides it by their number);
- `emolex`: the share of the line's words that the NRC EmoLex ties to the emotion (a blend: the
  weighted sum over its emotions; neutral: null);
- `judge`: the semantic judge's cosine similarity of the line to the emotion's centroid (a blend:
  weighted), null where the `judge` extra is not installed;
- `syllables`: the line's syllables by the CMU dictionary (the fewest over its readings);
- `rhyme`: the rhyming sound of its last word ("AY T"), null when it has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from studio.core.blend import parse_blend
from trainer.common import phonetics
from trainer.common.emotions import EMOTIONS, count_emotions

if TYPE_CHECKING:
    from studio.core.cowrite.candidate import Candidate
    from trainer.evaluation.judge import EmotionJudge


def emolex_score(text: str, emotion: str) -> float | None:
    """The share of `text`'s words tied to `emotion` (or a blend) by EmoLex; None for neutral."""
    blend = parse_blend(emotion)
    weights = [(e, w) for e, w in blend.parts if e in EMOTIONS]
    if not weights:
        return None
    words = phonetics.words_of(text)
    if not words:
        return 0.0
    counts = count_emotions(text)
    return sum(w * counts[e] for e, w in weights) / len(words)


def judge_scores(judge: EmotionJudge, texts: Sequence[str], emotion: str) -> list[float | None]:
    """The judge's similarity of each text to `emotion` (a blend: weighted); None for neutral."""
    blend = parse_blend(emotion)
    weights = [(EMOTIONS.index(e), w) for e, w in blend.parts if e in EMOTIONS]
    if not weights or not texts:
        return [None] * len(texts)
    table = judge.scores(list(texts))
    return [sum(w * float(row[i]) for i, w in weights) for row in table]


def rhyme_sound(text: str) -> str | None:
    """The rhyming sound of the line's last word (the first of its readings), or None."""
    words = phonetics.words_of(text)
    parts = sorted(phonetics.rhyme_parts(words[-1])) if words else []
    return parts[0] if parts else None


def syllable_count(text: str) -> int:
    """The fewest syllables the line reads as."""
    return min(phonetics.line_syllables(phonetics.words_of(text)), default=0)


def candidate_record(candidate: Candidate, emotion: str, judge: float | None) -> dict[str, Any]:
    """One candidate as suggest's JSON shows it (README: "poetstudio suggest")."""
    return {
        "text": candidate.text,
        "seed": candidate.seed,
        "ended": candidate.ended,
        "scores": {
            "logprob": round(candidate.logprob, 4),
            "logprob_per_token": _rounded(candidate.mean_logprob),
            "emolex": _rounded(emolex_score(candidate.text, emotion)),
            "judge": _rounded(judge),
            "syllables": syllable_count(candidate.text),
            "rhyme": rhyme_sound(candidate.text),
            "follow_logprob": _rounded(candidate.follow_logprob),
        },
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
