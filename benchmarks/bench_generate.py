"""Benchmark the studio's generation core against plain `model.generate`, side by side.

Measures, as medians over interleaved rounds on one loaded base with two emotion LoRA adapters
(r=16 on all linear layers, as `poetstudio train` makes them):
- time to first token of `Poet.stream_poem` once the model is loaded (target <= 300 ms);
- decoding tokens/s of `stream_poem` and of `model.generate` with the same sampling settings, and
  both as a share of the memory-bandwidth limit (measured read bandwidth / weight bytes; target
  >= 50%);
- guided decoding (`strength` > 0: the emotion and neutral adapters as one batched forward of two
  rows) against plain decoding (strength 0), in the same rounds (target >= 0.9x);
- with --bf16, plain decoding with the weights in bf16 against fp32, in the same rounds;
- emotion switch time with both adapters loaded (target <= 50 ms).

Run:  .venv/bin/python benchmarks/bench_generate.py [--base smollm2-135m|tiny|FOLDER]
      [--home DATA_HOME] [--tokens 64] [--rounds 5] [--device cpu|cuda] [--random-init]
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
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.core.generation.poet import Poet  # noqa: E402
from studio.core.generation.settings import DEFAULT_STRENGTH, SamplingParams  # noqa: E402
from trainer.common.home import DataHome, resolve_home  # noqa: E402

FIRST_LINE = "The lamps are out along the quay"
EMOTIONS = ("joy", "sadness")
NEUTRAL = "neutral"  # the adapter guided decoding scores against
THREADS_USED: list[int | None] = []  # the decoding threads of each stream_poem run


def base_folder(spec: str, home_dir: str | None, scratch: Path, random_init: bool) -> str:
    """The loadable folder of the base to benchmark."""
    if spec == "tiny":
        from tests.helpers.models import build_tiny_base

        return str(build_tiny_base(scratch / "tiny-base"))
    from trainer.common.bases import resolve_base

    devdata = ROOT / ".devdata"
    if home_dir:
        home = DataHome(Path(home_dir))
    else:
        home = DataHome(devdata) if devdata.is_dir() else resolve_home()
    if random_init:
        return random_base(Path(spec), scratch / "random-base")
    return resolve_base(spec, home)


def random_base(source: Path, out: Path) -> str:
    """The architecture and tokenizer of `source` with random weights: same size, same speed."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return str(out)


def make_adapters(base: str, models_dir: Path) -> None:
    """Write emotion and neutral LoRA adapters with non-zero weights, as training shapes them."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    for index, emotion in enumerate((*EMOTIONS, NEUTRAL)):
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


def read_bandwidth_gbs(device: str, megabytes: int = 512, rounds: int = 7) -> float:
    """Memory read bandwidth: bytes summed per second over a buffer far larger than the caches."""
    import torch

    buffer = torch.ones(megabytes * 2**20 // 4, dtype=torch.float32, device=device)
    times = []
    for _ in range(rounds):  # the median of several passes: these machines are shared
        start = time.perf_counter()
        float(buffer.sum())
        times.append(time.perf_counter() - start)
    del buffer
    return megabytes * 2**20 / statistics.median(times) / 1e9


def weight_bytes(module: object) -> int:
    """Bytes of every parameter the decoder reads per token (LoRA weights included)."""
    return sum(p.numel() * p.element_size() for p in module.parameters())  # type: ignore[attr-defined]


def run_ours(poet: Poet, emotion: str, params: SamplingParams) -> tuple[float, float]:
    """One stream of exactly params.max_new_tokens tokens: (ttft s, decode tokens/s)."""
    for _ in poet.stream_poem(emotion, FIRST_LINE, params):
        pass
    stats = poet.last_stats
    THREADS_USED.append(stats.cpu_threads if stats else None)
    assert stats is not None and stats.ttft_s is not None and stats.tokens_per_s is not None
    return stats.ttft_s, stats.tokens_per_s


def run_generate(module: object, tokenizer: object, params: SamplingParams) -> tuple[float, float]:
    """The same poem length with `module.generate`: (ttft s, decode tokens/s)."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    from trainer.common.textformat import PoemTokens, prompt_ids

    marks: list[float] = []

    class Clock(BaseStreamer):
        def put(self, value: object) -> None:
            marks.append(time.perf_counter())

        def end(self) -> None:
            marks.append(time.perf_counter())

    device = next(module.parameters()).device  # type: ignore[attr-defined]
    ids = torch.tensor([prompt_ids(tokenizer, FIRST_LINE, PoemTokens.of(tokenizer))], device=device)
    torch.manual_seed(params.seed or 0)
    start = time.perf_counter()
    with torch.inference_mode():
        module.generate(  # type: ignore[attr-defined]
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
            pad_token_id=tokenizer.eos_token_id,  # type: ignore[attr-defined]
            streamer=Clock(),
        )
    # marks: [prompt, token 1, ..., token N, end]
    first, last = marks[1], marks[-2]
    return first - start, (len(marks) - 3) / (last - first)


def plain_peft_model(base: str, adapter: Path, device: str) -> object:
    """The emotion model loaded the ordinary way: transformers + peft, no studio loader."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from trainer.common.precision import inference_dtype

    model = AutoModelForCausalLM.from_pretrained(base, dtype=inference_dtype(device)).to(device)
    return PeftModel.from_pretrained(model, str(adapter)).eval()


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
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--strength", type=float, default=DEFAULT_STRENGTH, help="guided runs")
    parser.add_argument("--bf16", action="store_true", help="also decode with bf16 weights")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--decode-threads",
        type=int,
        default=None,
        help="fix the studio's CPU decoding threads (default: the cores other processes leave)",
    )
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="give --base as a folder with only config.json and the tokenizer; weights are random",
    )
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="poetstudio-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        base = base_folder(args.base, args.home, scratch, args.random_init)
        home = DataHome(scratch / "home").ensure()
        make_adapters(base, home.models)
        poet = Poet(home, device=args.device, bundled_dir=scratch / "no-bundled", precision="fp32")
        poet.decode_threads = args.decode_threads
        half = None
        if args.bf16:
            half = Poet(
                home, device=args.device, bundled_dir=scratch / "no-bundled", precision="bf16"
            )
            half.decode_threads = args.decode_threads
            half.load(EMOTIONS[0])

        start = time.perf_counter()
        poet.load(EMOTIONS[0])
        cold_load = time.perf_counter() - start
        start = time.perf_counter()
        poet.load(EMOTIONS[1])
        adapter_load = time.perf_counter() - start
        plain = plain_peft_model(base, home.models / EMOTIONS[0], poet.device)

        # Exactly --tokens tokens every time: no eos, no line or stanza limit.
        params = SamplingParams(
            seed=7,
            min_lines=10_000,
            max_lines=10_000,
            max_stanzas=10_000,
            max_new_tokens=args.tokens,
            strength=0.0,
        )
        guided_params = replace(params, strength=args.strength)
        studio = poet.loader.load(poet.model_info(EMOTIONS[0]))
        results: dict[str, list[tuple[float, float]]] = {"ours": [], "same": [], "plain": []}
        extra: dict[str, list[tuple[float, float]]] = {"guided": [], "bf16": []}
        switches = []
        for round_index in range(args.rounds + 1):  # round 0 warms up and is not counted
            emotion = EMOTIONS[round_index % 2]
            switch = run_switch(poet, emotion)
            ours = run_ours(poet, emotion, params)
            guided = run_ours(poet, emotion, guided_params)
            poet.loader.activate(studio)  # the guided run left one adapter per batch row
            same = run_generate(studio.module, studio.tokenizer, params)
            plain_run = run_generate(plain, studio.tokenizer, params)
            halved = run_ours(half, EMOTIONS[0], params) if half is not None else None
            if round_index:
                switches.append(switch)
                results["ours"].append(ours)
                results["same"].append(same)
                results["plain"].append(plain_run)
                extra["guided"].append(guided)
                if halved is not None:
                    extra["bf16"].append(halved)
        model_bytes = weight_bytes(studio.module)
        bandwidth = read_bandwidth_gbs(args.device)

    limit = bandwidth * 1e9 / model_bytes
    ttft = {k: statistics.median(t for t, _ in v) for k, v in results.items()}
    rate = {k: statistics.median(r for _, r in v) for k, v in results.items()}
    decoding = args.decode_threads or f"automatic: {THREADS_USED[1:]}"
    threads = f"torch threads {torch.get_num_threads()}, decoding threads {decoding}"
    print(f"base: {base}  device: {poet.device}  {threads}")
    print(
        f"weights read per token: {model_bytes / 1e6:.0f} MB; read bandwidth {bandwidth:.1f} GB/s"
    )
    print(f"bandwidth limit {limit:.1f} tokens/s; medians of {args.rounds} x {args.tokens} tokens")
    print(f"cold load (base + 1st adapter): {cold_load:.2f} s; 2nd adapter: {adapter_load:.2f} s")
    print("columns: A = Poet.stream_poem; B = model.generate on the studio's loaded model;")
    print("         C = model.generate on transformers + peft loaded the ordinary way")
    rows = [("", "A", "B", "C", "target")]
    rows.append(
        ("time to first token", *(f"{ttft[k] * 1000:.0f} ms" for k in results), "<= 300 ms")
    )
    rows.append(("decoding tokens/s", *(f"{rate[k]:.1f}" for k in results), f">= {limit / 2:.1f}"))
    rows.append(
        ("share of bandwidth limit", *(f"{rate[k] / limit:.0%}" for k in results), ">= 50%")
    )
    rows.append(
        ("emotion switch", f"{statistics.median(switches) * 1000:.2f} ms", "", "", "<= 50 ms")
    )
    for row in rows:
        print(f"{row[0]:<26}" + "".join(f"{cell:>11}" for cell in row[1:]))
    ours = rate["ours"]
    print(f"decoding speed A/B {ours / rate['same']:.2f}x, A/C {ours / rate['plain']:.2f}x")
    guided_rate = statistics.median(r for _, r in extra["guided"])
    print(
        f"guided decoding (strength {args.strength:g}, emotion + neutral rows): "
        f"{guided_rate:.1f} tokens/s = {guided_rate / ours:.2f}x plain (target >= 0.9x)"
    )
    if extra["bf16"]:
        half_rate = statistics.median(r for _, r in extra["bf16"])
        print(
            f"plain decoding, bf16 weights: {half_rate:.1f} tokens/s = {half_rate / ours:.2f}x fp32"
        )


if __name__ == "__main__":
    main()
