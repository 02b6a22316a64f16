"""How closely the llama backend's next-token distributions follow the fp32 torch reference.

The bundled emotion models (LoRA adapters on smollm2-135m) each write poems with the fp32 torch
backend (plain sampling, fixed seeds); every poem is cut at several points, and each cut is a
context. For every context both backends score the next token with the model that wrote it:
top-1 agreement (the same most likely token) and the mean KL divergence KL(torch || llama) of the
softmax at temperature 1, in nats. Targets: at least 97% and at most 0.02.

Run:  .venv/bin/python benchmarks/bench_fidelity.py [--contexts 200] [--cuts 10] [--home HOME]
      [--gguf-type q4_1|q8_0|q4_0|f16]
The home must hold the converted base (`poetstudio setup`); the llama backend needs the `fast`
extra. Prints the CPU, the threads and the figures per emotion and overall.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_llama_rows import FILE_TYPES, WORK, requantised  # noqa: E402
from models import BUNDLED_DIR  # noqa: E402
from studio.core.generation.machine import cpu_name  # noqa: E402
from studio.core.generation.poet import Poet  # noqa: E402
from studio.core.generation.settings import SamplingParams  # noqa: E402
from trainer.common.home import DataHome, resolve_home  # noqa: E402

EMOTIONS = ("joy", "sadness", "anger", "fear", "trust", "disgust", "surprise", "anticipation")
FIRST_LINES = ("", "The lamps are out along the quay", "O weep for the friend that is gone")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--home", default=None)
    parser.add_argument("--contexts", type=int, default=200)
    parser.add_argument("--cuts", type=int, default=10, help="contexts cut from each poem")
    parser.add_argument("--tokens", type=int, default=60, help="tokens each poem is sampled to")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--gguf-type",
        default="q4_1",
        choices=sorted(FILE_TYPES),
        help="the base gguf's type llama decodes: q4_1 (its own) or a copy re-quantised from it "
        "(made once by benchmarks/bench_llama_rows.py's quantiser into the temporary folder)",
    )
    args = parser.parse_args()

    import torch

    home = DataHome(Path(args.home)) if args.home else resolve_home()
    poet = Poet(home, device="cpu", bundled_dir=BUNDLED_DIR, precision="fp32")
    poet.decode_threads = args.threads
    reference = poet._chosen("torch")[0]
    fast = poet._chosen("llama")[0]
    if fast.name != "llama":
        raise SystemExit("the llama backend is not installed: pip install 'poetstudio[fast]'")
    if args.gguf_type != "q4_1":
        _decode_copy(args.gguf_type)

    poems = math.ceil(args.contexts / args.cuts)
    contexts: list[tuple[str, list[int]]] = []
    started = time.perf_counter()
    for index in range(poems):
        emotion = EMOTIONS[index % len(EMOTIONS)]
        first = FIRST_LINES[index % len(FIRST_LINES)]
        params = SamplingParams(
            seed=100 + index,
            strength=0.0,
            backend="torch",
            max_new_tokens=args.tokens,
            min_lines=100,
            max_lines=100,
            max_stanzas=100,
        )
        plan = poet.plan(*_blend(poet, emotion), first, params)
        text = "".join(poet.stream_poem(emotion, first, params))
        model = plan.model
        ids = plan.prompt + model.tokenizer.encode(
            text[len(plan.first_line) + 1 :] if plan.first_line else text,
            add_special_tokens=False,
        )
        span = len(ids) - len(plan.prompt)
        for cut in range(args.cuts):
            at = len(plan.prompt) + (span * cut) // args.cuts
            contexts.append((emotion, ids[: max(1, at)]))
    contexts = contexts[: args.contexts]
    sampled = time.perf_counter() - started

    per: dict[str, list[tuple[bool, float]]] = {}
    for emotion, ids in contexts:
        info = poet.model_info(emotion)
        scores = []
        for backend in (reference, fast):
            with backend.decoding(args.threads):
                model = backend.load(info)
                scores.append(backend.rows([model]).forward(torch.tensor([ids])).float()[0])
        ref_lp = torch.log_softmax(scores[0], -1)
        fast_lp = torch.log_softmax(scores[1], -1)
        kl = float((ref_lp.exp() * (ref_lp - fast_lp)).sum())
        same = int(ref_lp.argmax()) == int(fast_lp.argmax())
        per.setdefault(emotion, []).append((same, kl))

    print(f"CPU: {cpu_name()}; threads {args.threads}; contexts {len(contexts)} cut from {poems}")
    print(f"poems sampled with torch fp32 in {sampled:.0f} s; llama dtype {fast.dtype(model)}")
    print(f"{'emotion':<14}{'contexts':>9}{'top-1 agree':>13}{'mean KL (nats)':>16}")
    every = [row for rows in per.values() for row in rows]
    for emotion, rows in [*per.items(), ("all", every)]:
        agree = sum(same for same, _ in rows) / len(rows)
        mean_kl = sum(kl for _, kl in rows) / len(rows)
        print(f"{emotion:<14}{len(rows):>9}{agree:>13.1%}{mean_kl:>16.4f}")
    print("targets: top-1 agreement >= 97%, mean KL <= 0.02 nats")


def _decode_copy(kind: str) -> None:
    """Make the llama backend load its base from a `kind` copy of the base's own gguf."""
    from studio.core.generation.backends import llamacpp

    own = llamacpp.base_gguf

    def copy(spec: str, home: DataHome) -> Path:
        return requantised(own(spec, home), kind, Path(tempfile.gettempdir()) / WORK)

    llamacpp.base_gguf = copy


def _blend(poet: Poet, emotion: str) -> tuple[object, list[object]]:
    from studio.core.blend import parse_blend

    blend = parse_blend(emotion)
    return blend, poet.resolve(blend)  # type: ignore[return-value]


if __name__ == "__main__":
    main()
