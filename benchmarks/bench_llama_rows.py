"""How llama.cpp's decode time grows with the rows of one context, per gguf type of the base.

The llama backend decodes K rows of one adapter (co-writing's candidates, `eval`'s batches) as
K sequences of one llama.cpp context. Whether they share the work depends on the weights' type:
llama.cpp's batched CPU matmuls cover some types (Q8_0, Q4_0, F16) and not others (Q4_1, the
base's own type). This measures, on the real base with a bundled LoRA adapter applied, the
milliseconds per row-token of a one-token decode step for each row count, type and thread count:
a prompt of --prompt tokens per row is read first, then --steps single-token steps are timed
(median per step). Rounds interleave every (threads, rows, type) so a shared machine's load
falls on all alike; the figure is the median over rounds, with its ratio to q4_1 and to one row.

The other types are re-quantised from the base's Q4_1 gguf with llama.cpp's quantiser, once,
into --work (default: poetstudio-gguf-types in the temporary folder). The bundled adapter,
converted for the base, must load on every type (the tensor names stay); this says so.

Run:  .venv/bin/python benchmarks/bench_llama_rows.py [--home HOME] [--rounds 3]
      [--rows 1,2,3,6,8,16,32] [--types q4_1,q8_0,q4_0,f16] [--threads 2,1] [--emotion joy]
      [--work DIR] [--prompt 24] [--steps 12]
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_generate import load_line, machine_line  # noqa: E402
from models import BUNDLED_DIR  # noqa: E402
from studio.core.generation.backends import llamacpp  # noqa: E402
from studio.core.generation.backends.gguf_base import base_gguf, cache_dir  # noqa: E402
from studio.core.generation.backends.gguf_lora import converted_adapter  # noqa: E402
from studio.core.generation.poet import Poet  # noqa: E402
from trainer.common.atomic import atomic_path  # noqa: E402
from trainer.common.bases import resolve_base  # noqa: E402
from trainer.common.home import DataHome, resolve_home  # noqa: E402

# llama.cpp's file types (enum llama_ftype) by short name.
FILE_TYPES = {"f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 7}
WORK = "poetstudio-gguf-types"  # the copies' folder in the temporary folder


def requantised(source: Path, kind: str, folder: Path) -> Path:
    """`source` re-quantised to `kind` by llama.cpp's quantiser, made once into `folder` (named
    by the source's content hash) and reused."""
    with open(source, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()[:16]
    path = folder / f"{source.name.removesuffix('.gguf')}.{kind}-{digest}.gguf"
    if path.is_file():
        return path
    lib = llamacpp.library()
    params = lib.llama_model_quantize_default_params()
    params.ftype = FILE_TYPES[kind]
    params.allow_requantize = True  # the source is already quantised (Q4_1)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, ".gguf") as tmp:
        if lib.llama_model_quantize(str(source).encode(), str(tmp).encode(), params) != 0:
            raise SystemExit(f"llama.cpp could not re-quantise {source.name} to {kind}")
    return path


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def _step_ms(
    base: llamacpp.GgufBase,
    adapter: llamacpp.Adapter,
    rows: int,
    threads: int,
    prompt: int,
    steps: int,
) -> float:
    """The median ms of one single-token decode step of `rows` rows in a fresh context."""
    cells = max(llamacpp.CONTEXT_CELLS, rows * llamacpp.ROW_CELLS)
    context = llamacpp._Context(base, cells, max(llamacpp.POOLED_ROWS, rows))
    try:
        context.use(adapter, threads)
        ids = list(range(1000, 1000 + prompt))
        context.decode([(seq, ids) for seq in range(rows)], 0)
        times = []
        for step in range(steps):
            started = time.perf_counter()
            context.decode([(seq, [2000 + 7 * seq + step]) for seq in range(rows)], prompt + step)
            times.append(time.perf_counter() - started)
        return 1000 * statistics.median(times)
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--home", default=None)
    parser.add_argument(
        "--work",
        default=str(Path(tempfile.gettempdir()) / WORK),
        help="folder for the re-quantised copies",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=_ints, default=[1, 2, 3, 6, 8, 16, 32])
    parser.add_argument("--types", default="q4_1,q8_0,q4_0,f16")
    parser.add_argument("--threads", type=_ints, default=[2, 1])
    parser.add_argument("--prompt", type=int, default=24, help="tokens each row reads first")
    parser.add_argument("--steps", type=int, default=12, help="timed one-token steps")
    parser.add_argument("--emotion", default="joy")
    args = parser.parse_args()
    types = [kind for kind in args.types.split(",") if kind]

    home = DataHome(Path(args.home)) if args.home else resolve_home()
    poet = Poet(home, device="cpu", bundled_dir=BUNDLED_DIR, precision="fp32")
    info = poet.model_info(args.emotion)
    spec = info.base_spec
    assert spec is not None
    lib = llamacpp.library()
    source = base_gguf(spec, home)
    work = Path(args.work)
    folder = resolve_base(spec, home)

    bases: dict[str, tuple[llamacpp.GgufBase, llamacpp.Adapter]] = {}
    for kind in types:
        started = time.perf_counter()
        path = source if kind == "q4_1" else requantised(source, kind, work)
        made = time.perf_counter() - started
        base = llamacpp.GgufBase(spec, path, folder)
        lora = converted_adapter(info.path, base.shape, cache_dir(home) / "lora", args.emotion)
        handle = lib.llama_adapter_lora_init(base.model, str(lora).encode())
        if not handle:
            raise SystemExit(f"the {args.emotion} adapter does not load on the {kind} base")
        address = ctypes.cast(handle, ctypes.c_void_p).value
        assert address is not None
        bases[kind] = (base, llamacpp.Adapter(address))
        size = path.stat().st_size / 1e6
        print(f"{kind}: {path.name} ({size:.0f} MB, ready in {made:.1f} s), adapter loads")

    print(machine_line())
    print(llamacpp.library().llama_print_system_info().decode().strip())
    print(f"before: {load_line()}")
    results: dict[tuple[int, int, str], list[float]] = {}
    started = time.perf_counter()
    for index in range(args.rounds):
        for threads in args.threads:
            for rows in args.rows:
                # Rotate the order of the types each round so none always runs first.
                shift = index % len(types)
                for kind in types[shift:] + types[:shift]:
                    base, adapter = bases[kind]
                    ms = _step_ms(base, adapter, rows, threads, args.prompt, args.steps)
                    results.setdefault((threads, rows, kind), []).append(ms)
    print(f"after: {load_line()}")
    print(f"{args.rounds} rounds in {time.perf_counter() - started:.0f} s; prompt {args.prompt},")
    print(f"{args.steps} timed steps; adapter {args.emotion}; median over rounds\n")

    for threads in args.threads:
        print(f"ms per row-token, {threads} thread(s) (x: against q4_1 with the same rows)")
        print(f"{'rows':>5}" + "".join(f"{kind:>16}" for kind in types))
        for rows in args.rows:
            line = f"{rows:>5}"
            plain = statistics.median(results[(threads, rows, types[0])]) / rows
            for kind in types:
                per = statistics.median(results[(threads, rows, kind)]) / rows
                line += f"{per:>9.2f} ({per / plain:.2f}x)"
            print(line)
        print(f"\nstep time of K rows against 1 row, {threads} thread(s)")
        print(f"{'rows':>5}" + "".join(f"{kind:>10}" for kind in types))
        for rows in args.rows:
            line = f"{rows:>5}"
            for kind in types:
                one = statistics.median(results[(threads, args.rows[0], kind)])
                line += f"{statistics.median(results[(threads, rows, kind)]) / one:>9.2f}x"
            print(line)
        print()


if __name__ == "__main__":
    main()
