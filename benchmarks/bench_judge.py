"""Compare two ways of loading the semantic judge's all-MiniLM-L6-v2 from the `judge` extra.

- `ours`: transformers' AutoModel on the wheel's model folder, mean pooling, L2
  (trainer.evaluation.judge);
- `st`: sentence-transformers' SentenceTransformer on the same folder.

Each timing is a fresh Python process (import + load + one embedding call), medians over rounds;
then both embed the same sentences and the minimum cosine between their vectors is printed.

Run:  .venv/bin/python benchmarks/bench_judge.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
started = time.perf_counter()
if {way!r} == "ours":
    from trainer.evaluation.judge import EmotionJudge, model_folder
    judge = EmotionJudge(model_folder())
    embed = judge.embed
else:
    from sentence_transformers import SentenceTransformer
    from trainer.evaluation.judge import model_folder
    model = SentenceTransformer(str(model_folder()), device="cpu", local_files_only=True)
    embed = lambda texts: model.encode(list(texts), convert_to_tensor=True)
vectors = embed(["A first sentence to embed."])
loaded = time.perf_counter() - started
texts = json.loads(sys.stdin.read())
print(json.dumps({{"seconds": loaded, "vectors": embed(texts).tolist()}}))
"""


def run(way: str, texts: list[str]) -> tuple[float, list[list[float]]]:
    """Import, load and embed in a fresh process; (seconds to a first vector, vectors)."""
    code = _CHILD.format(root=str(ROOT), way=way)
    done = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(texts), capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(done.stderr.strip().splitlines()[-1])
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["seconds"], out["vectors"]


def main() -> None:
    """Time both ways side by side and compare their vectors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import torch

    sys.path.insert(0, str(ROOT))
    from tests.trainer.test_judge import HELD_OUT
    from trainer.evaluation.judge import DESCRIPTORS

    texts = [line for lines in (*DESCRIPTORS.values(), *HELD_OUT.values()) for line in lines]
    times: dict[str, list[float]] = {"ours": [], "st": []}
    vectors: dict[str, list[list[float]]] = {}
    for _ in range(args.rounds):
        for way in times:  # interleaved, so machine load hits both alike
            seconds, vectors[way] = run(way, texts)
            times[way].append(seconds)
    cosine = torch.nn.functional.cosine_similarity(
        torch.tensor(vectors["ours"]), torch.tensor(vectors["st"]), dim=-1
    )
    for way, label in (("ours", "AutoModel + mean pool + L2"), ("st", "sentence-transformers")):
        print(f"{label:<28} import+load+first vector: median {statistics.median(times[way]):.2f} s")
    print(f"vectors of {len(texts)} sentences: minimum cosine {float(cosine.min()):.6f}")


if __name__ == "__main__":
    main()
