"""Probe line tries: every try of every formed line, and why it was written again or kept.

Writes formed poems (each emotion, seeds 0 to N-1, from `--first-line` or from nothing) with
`--line-tries` tries and prints, per poem, each try's end as line_tries.py judged it: `kept`
(reads well), or why it reads forced (`missed`: its rhyme or count yielded; `forced`: a token
below FORCED_LOGPROB; `cut-off`: its ending below ENDING_LOGPROB), with the tokens the try wrote,
its least likely token, its ending and its text; where every try reads forced, the best one,
kept, follows as `kept-forced`. The summary counts the lines written again
and how many of them found a try that reads well.

Run:  PYTHONPATH=. .venv/bin/python benchmarks/probe_line_tries.py --home DATA_HOME
      [--form quatrain] [--first-line "The evening comes across the field"] [--n 3]
      [--emotions joy sadness fear anger] [--line-tries 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.core.generation import line_tries  # noqa: E402
from studio.core.generation.poet import Poet  # noqa: E402
from studio.core.generation.settings import SamplingParams  # noqa: E402
from trainer.common.home import DataHome  # noqa: E402


def reason(end: line_tries.Saved) -> str:
    """Why a try's end reads forced, or "" where it reads well."""
    if end.missed:
        return "missed"
    if end.worst < line_tries.FORCED_LOGPROB:
        return "forced"
    return "cut-off" if end.ending < line_tries.ENDING_LOGPROB else ""


def text_of(end: line_tries.Saved) -> str:
    """The line a try's end closed."""
    return end.state.text.rstrip("\n").split("\n")[-1]


class TryLog:
    """Wraps `LineTries.close` to record each try's end (the class is patched for the run)."""

    def __init__(self) -> None:
        self.tries: list[tuple[str, int, float, float, str]] = []  # (verdict, tokens, ...)
        self.real = line_tries.LineTries.close

    def close(self, tries: line_tries.LineTries, end: line_tries.Saved) -> line_tries.Saved | None:
        begun = tries.again if tries.ends and tries.again is not None else tries.start
        assert begun is not None
        written = len(end.state.generated) - len(begun.state.generated)
        kept = self.real(tries, end)  # sets the try's scores on `end`
        why = reason(end)
        if kept is end:
            why = "kept-forced" if why else "kept"
        self.tries.append((why, written, end.worst, end.ending, text_of(end)))
        if kept is not None and kept is not end:  # every try read forced: the best is kept
            self.tries.append(("kept-forced", 0, kept.worst, kept.ending, text_of(kept)))
        return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="A data home with the base model.")
    parser.add_argument("--form", default="quatrain")
    parser.add_argument("--first-line", default="")
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--emotions", nargs="+", default=["joy", "sadness", "fear", "anger"])
    parser.add_argument("--line-tries", type=int, default=3)
    args = parser.parse_args()
    import models

    poet = Poet(DataHome(Path(args.home)), "cpu", bundled_dir=models.BUNDLED_DIR)
    log = TryLog()
    line_tries.LineTries.close = lambda tries, end: log.close(tries, end)  # type: ignore[method-assign]
    again = mended = 0
    for emotion in args.emotions:
        for seed in range(args.n):
            params = SamplingParams(seed=seed, form=args.form, line_tries=args.line_tries)
            for _ in poet.stream_poem(emotion, args.first_line, params):
                pass
            stats = poet.last_stats
            assert stats is not None
            print(
                f"## {emotion} seed {seed}: {stats.tokens} kept, {stats.discarded_tokens} discarded"
            )
            written_again = False
            for why, written, worst, ending, text in log.tries:
                print(f"  {why:<11} {written:>3} tokens  {worst:6.1f} {ending:6.1f}  {text}")
                if why in ("missed", "forced", "cut-off"):
                    written_again = True
                    continue
                if written_again:  # the line's last entry, after tries that read forced
                    again += 1
                    mended += why == "kept"
                written_again = False
            log.tries.clear()
    print(f"lines written again: {again}; of them, a try that reads well: {mended}")


if __name__ == "__main__":
    main()
