"""Benchmark line tries: how many formed lines read forced, with and without writing them again.

Writes the same formed poems (each emotion, seeds 0 to N-1, from nothing) once per `--line-tries`
value and gives each kept line's least likely token and its ending (its last word's tokens and
those closing the line, summed) under the emotion model (its first row, before any processor: the
figures line_tries.py judges a line by). With `--lines`, every line is printed beside them, least
likely token first, to read where the thresholds fall; the summary gives, per tries value, the
lines whose least likely token is below line_tries.FORCED_LOGPROB, those whose ending is below
line_tries.ENDING_LOGPROB, the lines whose last word comes straight after punctuation ("never
heard. high,"), the lines written again, the tokens discarded, and the poems' rhyme, syllable and
meter accuracy (trainer/evaluation/formscore.py, as `poetstudio eval` scores them). `--poems FILE`
writes the poems out to read.

Run:  PYTHONPATH=. .venv/bin/python benchmarks/bench_line_tries.py --home DATA_HOME
      [--emotions sadness joy anger] [--form quatrain] [--n 10] [--line-tries 1 3] [--lines]
      [--poems FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.core.formtokens import Kind  # noqa: E402
from studio.core.generation import line_tries  # noqa: E402
from studio.core.generation.decode import PoemDecode  # noqa: E402
from studio.core.generation.poet import Poet  # noqa: E402
from studio.core.generation.settings import SamplingParams  # noqa: E402
from studio.core.generation.vocabulary import token_table  # noqa: E402
from trainer.common.form import parse_form  # noqa: E402
from trainer.common.home import DataHome  # noqa: E402
from trainer.evaluation.formscore import poem_lines, pool, score_poem  # noqa: E402

# A line whose last word follows a mark inside the line: "rage; good," or "heard. high".
TACKED = re.compile(r"[^\w\s'-]\s*[\w']+\W*$")


class LineRecorder:
    """Follows the poem being streamed: each token's log-probability under the emotion model, by
    the tokens before it and itself, so that a kept line is judged by its own try's tokens."""

    def __init__(self) -> None:
        self.logprob: dict[tuple[int, ...], float] = {}
        self.decode: PoemDecode | None = None
        choose = PoemDecode.choose

        def recording(decode: PoemDecode, logits: Any) -> int:
            token = choose(decode, logits)
            self.decode = decode
            path = (*decode.state.generated, token)
            self.logprob[path] = float(logits[0].float().log_softmax(-1)[token])
            return token

        setattr(PoemDecode, "choose", recording)  # noqa: B010 - a benchmark's probe

    def kept_lines(self) -> list[tuple[float, float, str]]:
        """Each line the poem kept, with its least likely token's log-probability and its
        ending's (its last word's tokens and those closing the line, summed)."""
        decode = self.decode
        assert decode is not None
        tokenizer = decode.plan.model.tokenizer
        kinds = token_table(decode.plan.model).kinds
        lines: list[tuple[float, float, str]] = []
        score, text = line_tries.LineScore(), ""
        generated = decode.state.generated
        for position, token in enumerate(generated):
            score.see(self.logprob[tuple(generated[: position + 1])], kinds[token] is Kind.WORD)
            text += str(tokenizer.decode([token]))
            if "\n" in text:
                line = text.split("\n")[0]
                if line.strip():
                    lines.append((score.worst, score.ending, line.strip()))
                score, text = line_tries.LineScore(), ""
        if text.strip():
            lines.append((score.worst, score.ending, text.strip()))
        self.logprob.clear()
        return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="A data home with the bundled models.")
    parser.add_argument("--emotions", nargs="+", default=["sadness", "joy", "anger"])
    parser.add_argument("--form", default="quatrain")
    parser.add_argument("--n", type=int, default=10, help="Poems per emotion (seeds 0 to n-1).")
    parser.add_argument("--line-tries", nargs="+", type=int, default=[1, 3])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--lines", action="store_true", help="Print every kept line.")
    parser.add_argument("--poems", type=Path, help="Write every poem to this file.")
    args = parser.parse_args()
    import models

    poet = Poet(DataHome(Path(args.home)), "cpu", bundled_dir=models.BUNDLED_DIR)
    recorder = LineRecorder()
    report: dict[str, Any] = {"form": args.form, "threshold": line_tries.FORCED_LOGPROB}
    form = parse_form(args.form)
    written: list[str] = []
    for tries in args.line_tries:
        kept: list[tuple[float, float, str]] = []
        rewritten = discarded = 0
        scores = []
        for emotion in args.emotions:
            for seed in range(args.n):
                params = SamplingParams(
                    seed=seed, form=args.form, line_tries=tries, backend=args.backend
                )
                text = "".join(poet.stream_poem(emotion, "", params))
                scores.append(score_poem(poem_lines(text), form))
                title = f"## {emotion}, seed {seed}, --line-tries {tries}"
                written.append(f"{title}\n\n{text.strip()}\n")
                stats = poet.last_stats
                assert stats is not None
                rewritten += stats.rewritten_lines
                discarded += stats.discarded_tokens
                kept += recorder.kept_lines()
        forced = [line for line in kept if line[0] < line_tries.FORCED_LOGPROB]
        cut_off = [line for line in kept if line[1] < line_tries.ENDING_LOGPROB]
        report[f"tries={tries}"] = {
            "lines": len(kept),
            "forced_lines": len(forced),
            "cut_off_lines": len(cut_off),
            "last_word_after_punctuation": sum(bool(TACKED.search(line)) for *_, line in kept),
            "lines_written_again": rewritten,
            "tokens_discarded": discarded,
            **{
                name: value
                for name, value in pool(scores).to_dict().items()
                if name.endswith("accuracy") or name == "poems_exact"
            },
        }
        if args.lines:
            print(f"## --line-tries {tries}")
            for worst, ending, line in sorted(kept):
                print(f"{worst:7.2f} {ending:7.2f}  {line}")
    print(json.dumps(report, indent=2))
    if args.poems:
        args.poems.write_text("\n".join(written), encoding="utf-8")


if __name__ == "__main__":
    main()
