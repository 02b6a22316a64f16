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
- emotion switch time with both adapters loaded (target <= 50 ms);
- per backend (--backends, default torch and, when llama-cpp-python is installed, llama): plain,
  guided and a 2-emotion blend (guided) decoding, time to first token and emotion switch, in the
  same interleaved rounds; with llama-cpp-python, plain llama.cpp on the same gguf with the same
  threads and no LoRA (its own sampling loop) is the anchor row every rate is divided by;
- with --rss, the RSS and PSS of a fresh process per backend that loaded the bundled joy and
  neutral models and wrote one guided poem.
Every run prints the CPU's model and flags, the load average before and after, and its niceness:
these machines are shared, so compare ratios of one run, never figures of different runs.

Run:  .venv/bin/python benchmarks/bench_generate.py [--base smollm2-135m|tiny|FOLDER]
      [--home DATA_HOME] [--tokens 64] [--rounds 5] [--device cpu|cuda] [--random-init]
      [--backends torch,llama] [--no-generate] [--rss]
The base defaults to the offline preset `smollm2-135m` resolved in --home (default: the
repository's .devdata, else $POETSTUDIO_HOME); `tiny` builds the test suite's tiny GPT-2 instead.
The llama backend runs the preset only (its gguf); for other bases only torch is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
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


def make_adapters(base: str, models_dir: Path, spec: str | None = None) -> None:
    """Write emotion and neutral LoRA adapters with non-zero weights, as training shapes them;
    their manifests name the base `spec` (default: the folder)."""
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
        manifest = {
            "format": 1,
            "emotion": emotion,
            "method": "lora",
            "base": {"spec": spec or base},
        }
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


def run_switch(poet: Poet, emotion: str, backend: str | None = None) -> float:
    """Seconds to make `emotion` the active model when its adapter is already loaded (on
    `backend`, else the Poet's current one)."""
    start = time.perf_counter()
    if backend is None:
        poet.load(emotion)
    else:
        poet._chosen(backend)[0].load(poet.model_info(emotion))
    return time.perf_counter() - start


def fixed_tokens(tokens: int) -> SamplingParams:
    """Settings that write exactly `tokens` tokens every time (no eos, no line or stanza limit),
    plain (strength 0), seed 7: the same work in every round."""
    return SamplingParams(
        seed=7,
        min_lines=10_000,
        max_lines=10_000,
        max_stanzas=10_000,
        max_new_tokens=tokens,
        strength=0.0,
    )


def machine_line() -> str:
    """The CPU's model and the flags that decide which kernels run, for every figure's output."""
    from studio.core.generation.machine import cpu_name

    wanted = ("avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "amx")
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    shown = [flag for flag in wanted if any(f.startswith(flag) for f in flags)]
    return f"CPU: {cpu_name()}; {os.cpu_count()} cores; flags: {' '.join(shown) or 'unknown'}"


def load_line() -> str:
    """The load average and this process's niceness."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}; nice {os.nice(0)}"


def link_preset_base(source_home: DataHome, home: DataHome, spec: str) -> None:
    """Let the scratch `home` read the preset's converted folder and kept wheel (read-only)."""
    home.bases.mkdir(parents=True, exist_ok=True)
    for name in (spec, "downloads"):
        target = source_home.bases / name
        if target.exists() and not (home.bases / name).exists():
            os.symlink(target, home.bases / name, target_is_directory=True)


def anchor_model(gguf: Path, threads: int) -> object:
    """Plain llama.cpp (llama-cpp-python's own loop) on the base's gguf, without LoRA."""
    from unittest import mock

    import llama_cpp

    from studio.core.generation.backends.llamacpp import load_params

    # With the backend's own load parameters, so both read the same weight layout (`load_params`).
    with mock.patch.object(llama_cpp.llama_cpp, "llama_model_default_params", load_params):
        return llama_cpp.Llama(
            model_path=str(gguf),
            n_ctx=512,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )


def run_anchor(llm: object, tokens: int, seed: int) -> tuple[float, float]:
    """Exactly `tokens` tokens sampled by llama.cpp (eos banned): (ttft s, decode tokens/s)."""
    eos = llm.token_eos()  # type: ignore[attr-defined]
    llm.reset()  # type: ignore[attr-defined]
    marks = []
    start = time.perf_counter()
    for _ in llm.create_completion(  # type: ignore[attr-defined]
        FIRST_LINE + "\n",
        max_tokens=tokens,
        temperature=0.8,
        top_k=50,
        top_p=0.95,
        repeat_penalty=1.0,
        seed=seed,
        stream=True,
        logit_bias={eos: float("-inf")},
    ):
        marks.append(time.perf_counter())
    return marks[0] - start, (len(marks) - 1) / (marks[-1] - marks[0])


def rss_child(backend: str, home_dir: str | None) -> None:
    """In a fresh process: load the bundled joy and neutral models on `backend`, write one guided
    poem, print RSS and PSS in MB as JSON."""
    import psutil

    from models import BUNDLED_DIR

    home = DataHome(Path(home_dir)) if home_dir else resolve_home()
    poet = Poet(home, device="cpu", bundled_dir=BUNDLED_DIR)
    params = SamplingParams(seed=1, backend=backend, max_new_tokens=32)
    poet._backend_choice = backend  # the studio loads its models before the first poem
    poet.load("joy")
    for _ in poet.stream_poem("joy", FIRST_LINE, params):
        pass
    memory = psutil.Process().memory_full_info()
    stats = poet.last_stats
    ran = f"{stats.backend} {stats.dtype}" if stats else backend
    print(json.dumps({"ran": ran, "rss": memory.rss / 1e6, "pss": getattr(memory, "pss", 0) / 1e6}))


def measure_rss(backend: str, home_dir: str | None) -> str:
    """One line: what a fresh studio-like process on `backend` holds."""
    command = [sys.executable, __file__, "--rss-child", backend]
    command += ["--home", home_dir] if home_dir else []
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"{backend}: failed ({(done.stderr.strip().splitlines() or ['?'])[-1]})"
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return f"{found['ran']}: RSS {found['rss']:.0f} MB, PSS {found['pss']:.0f} MB"


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
    parser.add_argument(
        "--backends",
        default=None,
        help="comma-separated backends to measure (default: torch, and llama when installed)",
    )
    parser.add_argument(
        "--no-generate", action="store_true", help="leave out the model.generate columns B and C"
    )
    parser.add_argument("--rss", action="store_true", help="measure a process's memory per backend")
    parser.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.home)
        return

    from studio.core.generation.backends import llamacpp

    default = "torch,llama" if llamacpp.installed() else "torch"
    backends = [b.strip() for b in (args.backends or default).split(",") if b.strip()]
    preset = args.base in ("smollm2-135m",) and not args.random_init
    if not preset:
        backends = [b for b in backends if b != "llama"]
    print(machine_line())
    print(f"before: {load_line()}")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="poetstudio-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        base = base_folder(args.base, args.home, scratch, args.random_init)
        home = DataHome(scratch / "home").ensure()
        if preset:
            devdata = ROOT / ".devdata"
            source = DataHome(Path(args.home)) if args.home else None
            if source is None:
                source = DataHome(devdata) if devdata.is_dir() else resolve_home()
            link_preset_base(source, home, args.base)
        make_adapters(base, home.models, args.base if preset else None)
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

        params = replace(fixed_tokens(args.tokens), backend="torch")
        guided_params = replace(params, strength=args.strength)
        studio = poet.loader.load(poet.model_info(EMOTIONS[0]))
        results: dict[str, list[tuple[float, float]]] = {"ours": [], "same": [], "plain": []}
        extra: dict[str, list[tuple[float, float]]] = {"guided": [], "bf16": []}
        # Per backend: plain, guided and blend rows of (ttft s, tokens/s), and switches.
        kinds = ("plain", "guided", "blend")
        per: dict[str, dict[str, list[tuple[float, float]]]] = {
            b: {k: [] for k in kinds} for b in backends
        }
        per_switch: dict[str, list[float]] = {b: [] for b in backends}
        anchor_runs: list[tuple[float, float]] = []
        anchor = None
        anchor_threads = None
        blend = "+".join(EMOTIONS)
        switches = []
        for round_index in range(args.rounds + 1):  # round 0 warms up and is not counted
            emotion = EMOTIONS[round_index % 2]
            switch = run_switch(poet, emotion, "torch")
            ours = run_ours(poet, emotion, params)
            guided = run_ours(poet, emotion, guided_params)
            poet.loader.activate(studio)  # the guided run left one adapter per batch row
            same = plain_run = None
            if not args.no_generate:
                same = run_generate(studio.module, studio.tokenizer, params)
                plain_run = run_generate(plain, studio.tokenizer, params)
            halved = run_ours(half, EMOTIONS[0], params) if half is not None else None
            measured = {}
            for name in backends:
                mine = replace(params, backend=name)
                measured[name] = {
                    "switch": run_switch(poet, emotion, name),
                    "plain": run_ours(poet, emotion, mine),
                    "guided": run_ours(poet, emotion, replace(mine, strength=args.strength)),
                    "blend": run_ours(poet, blend, replace(mine, strength=args.strength)),
                }
                if name == "llama":
                    threads = THREADS_USED[-3] or 1  # the plain llama stream's
                    if anchor is None or anchor_threads != threads:
                        from studio.core.generation.backends.gguf_base import base_gguf

                        anchor = anchor_model(base_gguf(args.base, home), threads)
                        anchor_threads = threads
                    measured["anchor"] = {"run": run_anchor(anchor, args.tokens, round_index)}
            if round_index:
                switches.append(switch)
                results["ours"].append(ours)
                if same is not None and plain_run is not None:
                    results["same"].append(same)
                    results["plain"].append(plain_run)
                extra["guided"].append(guided)
                if halved is not None:
                    extra["bf16"].append(halved)
                for name in backends:
                    per_switch[name].append(measured[name]["switch"])  # type: ignore[arg-type]
                    for kind in kinds:
                        per[name][kind].append(measured[name][kind])  # type: ignore[arg-type]
                if "anchor" in measured:
                    anchor_runs.append(measured["anchor"]["run"])  # type: ignore[arg-type]
        model_bytes = weight_bytes(studio.module)
        bandwidth = read_bandwidth_gbs(args.device)

    limit = bandwidth * 1e9 / model_bytes
    if args.no_generate:
        del results["same"], results["plain"]
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
    columns = ["A", "B", "C"][: len(results)]
    rows = [("", *columns, "target")]
    rows.append(
        ("time to first token", *(f"{ttft[k] * 1000:.0f} ms" for k in results), "<= 300 ms")
    )
    rows.append(("decoding tokens/s", *(f"{rate[k]:.1f}" for k in results), f">= {limit / 2:.1f}"))
    rows.append(
        ("share of bandwidth limit", *(f"{rate[k] / limit:.0%}" for k in results), ">= 50%")
    )
    switch_ms = f"{statistics.median(switches) * 1000:.2f} ms"
    rows.append(("emotion switch", switch_ms, *[""] * (len(results) - 1), "<= 50 ms"))
    for row in rows:
        print(f"{row[0]:<26}" + "".join(f"{cell:>11}" for cell in row[1:]))
    ours = rate["ours"]
    if not args.no_generate:
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
    print_backends(per, per_switch, anchor_runs, anchor_threads, ours, args)
    print(f"after: {load_line()}")
    if args.rss:
        for name in backends:
            print(
                "memory, fresh process, bundled joy + neutral loaded, one guided poem: "
                + measure_rss(name, args.home)
            )


def print_backends(
    per: dict[str, dict[str, list[tuple[float, float]]]],
    per_switch: dict[str, list[float]],
    anchor_runs: list[tuple[float, float]],
    anchor_threads: int | None,
    fp32_plain: float,
    args: argparse.Namespace,
) -> None:
    """The per-backend table: medians, and ratios to plain llama.cpp and to fp32 torch A."""
    if not per:
        return
    anchor = statistics.median(r for _, r in anchor_runs) if anchor_runs else None
    print(
        f"backends, medians of {args.rounds} x {args.tokens} tokens, strength {args.strength:g}; "
        f"blend = {'+'.join(EMOTIONS)} guided"
    )
    if anchor is not None:
        first = statistics.median(t for t, _ in anchor_runs) * 1000
        print(
            f"anchor: plain llama.cpp, same gguf, {anchor_threads} thread(s), no LoRA: "
            f"{anchor:.1f} tokens/s, first token {first:.0f} ms"
        )
    header = f"{'backend':<8}{'row':<8}{'tokens/s':>10}{'x plain':>9}{'x llama.cpp':>13}"
    print(header + f"{'x fp32 A':>10}{'TTFT':>9}{'switch':>10}")
    for name, kinds in per.items():
        plain = statistics.median(r for _, r in kinds["plain"])
        for kind, runs in kinds.items():
            rate = statistics.median(r for _, r in runs)
            first = statistics.median(t for t, _ in runs) * 1000
            versus = f"{rate / anchor:.2f}" if anchor else "-"
            switch = statistics.median(per_switch[name]) * 1000 if kind == "plain" else None
            print(
                f"{name:<8}{kind:<8}{rate:>10.1f}{rate / plain:>9.2f}{versus:>13}"
                f"{rate / fp32_plain:>10.2f}{first:>7.0f}ms"
                + (f"{switch:>8.2f}ms" if switch is not None else "")
            )
    print(
        "targets: guided >= 0.6x llama.cpp; plain >= 0.8x llama.cpp and >= 4x fp32 A; "
        "guided >= 0.9x plain; blend >= 0.8x plain; TTFT <= 100 ms; switch <= 20 ms"
    )


if __name__ == "__main__":
    main()
