"""Benchmark the studio's generation core against plain `model.generate`, side by side.

Measures, as medians over interleaved rounds on one loaded base with two emotion LoRA adapters
(r=16 on all linear layers, as `poetstudio train` makes them):
- time to first token of `Poet.stream_poem` once the model is loaded (target <= 300 ms);
- decoding tokens/s of `stream_poem` and of `model.generate` with the same sampling settings, and
  both as a share of the memory-bandwidth limit (measured read bandwidth / weight bytes; target
  >= 50%);
- emotion switch time with both adapters loaded (target <= 50 ms).

Run:  .venv/bin/python benchmarks/bench_generate.py [--base smollm2-135m|tiny|FOLDER]
      [--home DATA_HOME] [--tokens 64] [--rounds 5]
The base defaults to the offline preset `smollm2-135m` resolved in --home (default: the
repository's .devdata, else $POETSTUDIO_HOME); `tiny` builds the test suite's tiny GPT-2 instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.generate import Poet, SamplingParams  # noqa: E402
from trainer.home import DataHome, resolve_home  # noqa: E402

SEED_LINE = "The lamps are out along the quay"
EMOTIONS = ("joy", "sadness")


def base_folder(spec: str, home_dir: str | None, scratch: Path) -> str:
    """The loadable folder of the base to benchmark."""
    if spec == "tiny":
        from tests.conftest import build_tiny_base

        return str(build_tiny_base(scratch / "tiny-base"))
    from trainer.bases import resolve_base

    devdata = ROOT / ".devdata"
    home = (
        DataHome(Path(home_dir))
        if home_dir
        else (DataHome(devdata) if devdata.is_dir() else resolve_home())
    )
    return resolve_base(spec, home)


def make_adapters(base: str, models_dir: Path) -> None:
    """Write two LoRA adapters with non-zero weights, the shape training produces."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    for index, emotion in enumerate(EMOTIONS):
        model = AutoModelForCausalLM.from_pretrained(base)
        config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear")
        peft_model = get_peft_model(model, config)
        torch.manual_seed(index)
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.002)
        out = models_dir / emotion
        peft_model.save_pretrained(out)
        manifest = {"format": 1, "emotion": emotion, "method": "lora", "base": {"spec": base}}
        (out / "poetstudio.json").write_text(json.dumps(manifest))


def read_bandwidth_gbs(megabytes: int = 512, rounds: int = 5) -> float:
    """Memory read bandwidth: bytes summed per second over a buffer far larger than the caches."""
    import torch

    buffer = torch.ones(megabytes * 2**20 // 4, dtype=torch.float32)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        buffer.sum()
        times.append(time.perf_counter() - start)
    del buffer
    return megabytes * 2**20 / min(times) / 1e9


def weight_bytes(module: object) -> int:
    """Bytes of every parameter the decoder reads per token (LoRA weights included)."""
    return sum(p.numel() * p.element_size() for p in module.parameters())  # type: ignore[attr-defined]


def run_ours(poet: Poet, emotion: str, params: SamplingParams) -> tuple[float, float]:
    """One stream of exactly params.max_new_tokens tokens: (ttft s, decode tokens/s)."""
    for _ in poet.stream_poem(emotion, SEED_LINE, params):
        pass
    stats = poet.last_stats
    assert stats is not None and stats.ttft_s is not None and stats.tokens_per_s is not None
    return stats.ttft_s, stats.tokens_per_s


def run_generate(poet: Poet, emotion: str, params: SamplingParams) -> tuple[float, float]:
    """The same poem length with plain `model.generate`: (ttft s, decode tokens/s)."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    from trainer.textformat import prompt_ids

    loaded = poet._get(emotion)
    marks: list[float] = []

    class Clock(BaseStreamer):
        def put(self, value: object) -> None:
            marks.append(time.perf_counter())

        def end(self) -> None:
            marks.append(time.perf_counter())

    ids = torch.tensor([prompt_ids(loaded.tokenizer, SEED_LINE)])
    torch.manual_seed(params.seed or 0)
    start = time.perf_counter()
    with torch.inference_mode():
        loaded.module.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=True,
            temperature=params.temperature,
            top_k=params.top_k,
            top_p=params.top_p,
            repetition_penalty=params.repetition_penalty,
            no_repeat_ngram_size=params.no_repeat_ngram_size,
            max_new_tokens=params.max_new_tokens,
            min_new_tokens=params.max_new_tokens,
            pad_token_id=loaded.tokenizer.eos_token_id,
            streamer=Clock(),
        )
    # marks: [prompt, token 1, ..., token N, end]
    first, last = marks[1], marks[-2]
    return first - start, (len(marks) - 3) / (last - first)


def run_switch(poet: Poet, emotion: str) -> float:
    """Seconds to make `emotion` the active model when its adapter is already loaded."""
    start = time.perf_counter()
    poet.load(emotion)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--base", default="smollm2-135m")
    parser.add_argument("--home", default=None)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import torch

    with tempfile.TemporaryDirectory(prefix="poetstudio-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        base = base_folder(args.base, args.home, scratch)
        home = DataHome(scratch / "home").ensure()
        make_adapters(base, home.models)
        poet = Poet(home, device="cpu", bundled_dir=scratch / "no-bundled")

        start = time.perf_counter()
        poet.load(EMOTIONS[0])
        cold_load = time.perf_counter() - start
        start = time.perf_counter()
        poet.load(EMOTIONS[1])
        adapter_load = time.perf_counter() - start

        # Exactly --tokens tokens every time: no eos, no line or stanza limit.
        params = SamplingParams(
            seed=7,
            min_lines=10_000,
            max_lines=10_000,
            max_stanzas=10_000,
            max_new_tokens=args.tokens,
        )
        run_ours(poet, EMOTIONS[0], params)  # warm-up
        run_generate(poet, EMOTIONS[0], params)
        ours, plain, switches = [], [], []
        for round_index in range(args.rounds):
            emotion = EMOTIONS[round_index % 2]
            switches.append(run_switch(poet, emotion))
            ours.append(run_ours(poet, emotion, params))
            plain.append(run_generate(poet, emotion, params))
        loaded = poet._get(EMOTIONS[0])
        model_bytes = weight_bytes(loaded.module)
        bandwidth = read_bandwidth_gbs()

    limit = bandwidth * 1e9 / model_bytes
    ours_ttft = statistics.median(t for t, _ in ours)
    ours_rate = statistics.median(r for _, r in ours)
    plain_ttft = statistics.median(t for t, _ in plain)
    plain_rate = statistics.median(r for _, r in plain)
    switch = statistics.median(switches)
    print(f"base: {base}  device: cpu  torch threads: {torch.get_num_threads()}")
    print(
        f"weights read per token: {model_bytes / 1e6:.0f} MB fp32; read bandwidth {bandwidth:.1f} GB/s"
    )
    print(
        f"bandwidth limit: {limit:.1f} tokens/s; {args.tokens} tokens x {args.rounds} rounds, medians"
    )
    print(
        f"cold load (base + first adapter): {cold_load:.2f} s; second adapter: {adapter_load:.2f} s"
    )
    rows = [
        ("", "stream_poem", "model.generate", "target"),
        (
            "time to first token",
            f"{ours_ttft * 1000:.0f} ms",
            f"{plain_ttft * 1000:.0f} ms",
            "<= 300 ms",
        ),
        ("decoding tokens/s", f"{ours_rate:.1f}", f"{plain_rate:.1f}", f">= {limit / 2:.1f}"),
        (
            "share of bandwidth limit",
            f"{ours_rate / limit:.0%}",
            f"{plain_rate / limit:.0%}",
            ">= 50%",
        ),
        ("emotion switch", f"{switch * 1000:.2f} ms", "", "<= 50 ms"),
    ]
    for row in rows:
        print(f"{row[0]:<26}{row[1]:>14}{row[2]:>16}{row[3]:>12}")
    print(f"stream_poem / model.generate decoding speed: {ours_rate / plain_rate:.2f}x")


if __name__ == "__main__":
    main()
