"""The engine's own work per token on the llama backend, apart from llama.cpp: each poem is
written once for real, then again with the model's forward replaced by the scores it returned
(so the same tokens are chosen), timing this thread's CPU time per token: processors, guidance,
the draw, text and stopping rules. Plain, guided and a 2-emotion blend; one thread.

Run:  .venv/bin/python benchmarks/bench_engine_step.py [--home DATA_HOME] [--tokens 64]
      [--rounds 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_generate import FIRST_LINE, fixed_tokens, load_line, machine_line  # noqa: E402
from models import BUNDLED_DIR  # noqa: E402
from studio.core.generation.backends import llamacpp  # noqa: E402
from studio.core.generation.poet import Poet  # noqa: E402
from trainer.common.home import DataHome, resolve_home  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", default=None)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    home = DataHome(Path(args.home)) if args.home else resolve_home()
    poet = Poet(home, device="cpu", bundled_dir=BUNDLED_DIR)
    poet.decode_threads = 1
    plain = replace(fixed_tokens(args.tokens), backend="llama")
    kinds = {
        "plain": ("joy", plain),
        "guided": ("joy", replace(plain, strength=1.0)),
        "blend": ("joy+sadness", replace(plain, strength=1.0)),
    }
    print(machine_line())
    print(f"before: {load_line()}")
    forward = llamacpp.LlamaRows.forward
    try:
        for kind, (emotion, params) in kinds.items():
            recorded: list[Any] = []

            def record(rows: Any, ids: Any, out: list[Any] = recorded) -> Any:
                scores = forward(rows, ids)
                out.append(scores.clone())
                return scores

            llamacpp.LlamaRows.forward = record  # type: ignore[method-assign]
            text = "".join(poet.stream_poem(emotion, FIRST_LINE, params))
            position = [0]

            def replay(
                rows: Any, ids: Any, seq: list[Any] = recorded, at: list[int] = position
            ) -> Any:
                at[0] += 1
                return seq[at[0] - 1]

            llamacpp.LlamaRows.forward = replay  # type: ignore[method-assign]
            times = []
            for _ in range(args.rounds):
                position[0] = 0
                start = time.thread_time()
                again = "".join(poet.stream_poem(emotion, FIRST_LINE, params))
                times.append((time.thread_time() - start) / args.tokens * 1e6)
                assert again == text, "the replay chose other tokens"
            print(f"{kind:<7} {statistics.median(times):7.0f} us of CPU a token (median)")
    finally:
        llamacpp.LlamaRows.forward = forward  # type: ignore[method-assign]
    print(f"after: {load_line()}")


if __name__ == "__main__":
    main()
