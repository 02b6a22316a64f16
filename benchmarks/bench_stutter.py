"""The stutter guard on and off, side by side: the same eval prompts and seeds, the same models.

Writes `poetstudio eval`'s fixed cases (trainer.evaluation.metrics.eval_cases) for each emotion
model at each strength given, once with the stutter guard and once without, in one batched run,
and prints per emotion and strength: the share of poems that stutter (and why), EmoLex fidelity and
within-poem distinct-1. Poems of both arms go into one JSON file for reading.

Run:  .venv/bin/python benchmarks/bench_stutter.py --home DATA_HOME [-n 20] [--strength 1]
      [--out stutter.json]
The home needs the converted base; the bundled models are measured unless it has its own.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models import BUNDLED_DIR  # noqa: E402
from studio.core.batch import PoemRequest, write_poems  # noqa: E402
from studio.core.generation.poet import Poet  # noqa: E402
from studio.core.generation.settings import DEFAULT_STRENGTH, SamplingParams  # noqa: E402
from trainer.common.emotions import EMOTIONS, count_emotions, label_counts  # noqa: E402
from trainer.common.home import DataHome  # noqa: E402
from trainer.evaluation.metrics import (  # noqa: E402
    eval_cases,
    poem_distinct_1,
    stutter_reason,
    written_part,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("-n", type=int, default=20, help="poems per emotion, strength and arm")
    parser.add_argument("--strength", type=float, nargs="+", default=[DEFAULT_STRENGTH])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("stutter.json"))
    parser.add_argument(
        "--rescore",
        type=Path,
        help="a JSON file of an earlier run: take its guard-off poems instead of writing them again"
        " (they do not depend on the guard's code), and score them with today's measure",
    )
    args = parser.parse_args()
    earlier: dict[tuple[str, float, int], str] = {}
    if args.rescore:
        for arm in json.loads(args.rescore.read_text()):
            if not arm["stutter_guard"]:
                for poem in arm["poems"]:
                    earlier[(arm["emotion"], arm["strength"], poem["seed"])] = poem["text"]

    poet = Poet(DataHome(args.home), args.device, bundled_dir=BUNDLED_DIR)
    cases = eval_cases(args.n)
    keys: list[tuple[str, float, bool]] = []
    requests: list[PoemRequest] = []
    for guard in (False, True):
        for strength in args.strength:
            for emotion in EMOTIONS:
                for case in cases:
                    params = SamplingParams(seed=case.seed, strength=strength, stutter_guard=guard)
                    requests.append(PoemRequest(emotion, case.first_line, params))
                    keys.append((emotion, strength, guard))
    todo = [
        i
        for i, r in enumerate(requests)
        if (keys[i][0], keys[i][1], r.params.seed) not in earlier or keys[i][2]
    ]
    fresh = iter(write_poems(poet, [requests[i] for i in todo]))
    again = set(todo)
    written = [
        next(fresh)[0] if i in again else earlier[(keys[i][0], keys[i][1], r.params.seed)]
        for i, r in enumerate(requests)
    ]
    rows: dict[tuple[str, float, bool], list[dict[str, object]]] = {}
    for key, request, text in zip(keys, requests, written, strict=True):
        text = text.strip()
        rows.setdefault(key, []).append(
            {
                "first_line": request.first_line,
                "seed": request.params.seed,
                "text": text,
                "stutter": stutter_reason(text),
                "label": label_counts(count_emotions(text)),
                "distinct_1": poem_distinct_1(written_part(text, request.first_line)),
            }
        )
    print("emotion | strength | stutter off -> on | EmoLex off -> on | distinct-1 off -> on")
    totals: dict[tuple[float, bool], list[int]] = {}
    for strength in args.strength:
        for emotion in EMOTIONS:
            cells = []
            for measure in ("stutter", "label", "distinct_1"):
                pair = []
                for guard in (False, True):
                    poems = rows[(emotion, strength, guard)]
                    if measure == "stutter":
                        hits = sum(p["stutter"] is not None for p in poems)
                        totals.setdefault((strength, guard), []).append(hits)
                        pair.append(f"{hits}/{len(poems)}")
                    elif measure == "label":
                        pair.append(f"{sum(p['label'] == emotion for p in poems) / len(poems):.0%}")
                    else:
                        mean = sum(float(str(p["distinct_1"])) for p in poems) / len(poems)
                        pair.append(f"{mean:.2f}")
                cells.append(" -> ".join(pair))
            print(f"{emotion} | {strength:g} | " + " | ".join(cells))
    for strength in args.strength:
        off, on = (sum(totals[(strength, guard)]) for guard in (False, True))
        total = args.n * len(EMOTIONS)
        print(f"all emotions at {strength:g}: stutter {off}/{total} off, {on}/{total} on")
    report = [
        {"emotion": e, "strength": s, "stutter_guard": g, "poems": poems}
        for (e, s, g), poems in rows.items()
    ]
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(f"poems: {args.out}")


if __name__ == "__main__":
    main()
