"""The UI-free generation core: loading, adapter hot swap, streaming, stop rules, cancel, seeds."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from studio.core.generation.poet import Poet
from studio.core.generation.settings import SamplingParams
from studio.core.generation.stats import (
    STOP_CANCELLED,
    STOP_EOS,
    STOP_MAX_LINES,
    STOP_MAX_STANZAS,
    STOP_MAX_TOKENS,
)
from studio.core.generation.text import clean_first_line, clean_output
from studio.core.loader import LoadedModel
from tests.helpers.models import (
    ScriptedLM,
    build_tiny_lora,
    cancelled_at_third_token,
    pinned_poet,
)
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome
from trainer.common.textformat import PoemTokens, prompt_ids

pytestmark = pytest.mark.numerics

# Long enough that eos and the line limits never end a stream before the token limit.
ENDLESS = {"min_lines": 10_000, "max_lines": 10_000, "max_stanzas": 10_000}


@pytest.fixture
def poet(tiny_base: Path, home: DataHome, tmp_path: Path) -> Poet:
    """A Poet over a home with joy and sadness LoRA adapters on the tiny base."""
    build_tiny_lora(tiny_base, home.models / "joy", "joy", seed=1)
    build_tiny_lora(tiny_base, home.models / "sadness", "sadness", seed=2)
    return pinned_poet(home, tmp_path / "no-bundled")


def poem(poet: Poet, emotion: str, first_line: str = "", **settings: Any) -> str:
    return "".join(poet.stream_poem(emotion, first_line, SamplingParams(**settings)))


def test_adapters_hot_swap_on_one_base(poet: Poet, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForCausalLM

    loads: list[Any] = []
    original = AutoModelForCausalLM.from_pretrained

    def counting(*args: Any, **kwargs: Any) -> Any:
        loads.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", counting)
    steps: list[str] = []
    poet.load("joy", on_progress=lambda fraction, message: steps.append(message))
    assert steps[-1] == "joy ready on cpu"
    joy = poem(poet, "joy", "The lamps are out", seed=5, **ENDLESS, max_new_tokens=12)
    sadness = poem(poet, "sadness", "The lamps are out", seed=5, **ENDLESS, max_new_tokens=12)
    again = poem(poet, "joy", "The lamps are out", seed=5, **ENDLESS, max_new_tokens=12)
    assert len(loads) == 1, "switching emotion must not reload the base"
    assert poet.loader.loaded_bases() == 1
    assert sadness != joy, "the sadness adapter must really be active"
    assert again == joy, "switching back must restore the joy adapter exactly"


def test_a_retrained_adapter_replaces_the_old_one(poet: Poet, tiny_base: Path) -> None:
    before = poem(poet, "joy", seed=3, **ENDLESS, max_new_tokens=10)
    build_tiny_lora(tiny_base, poet.home.models / "joy", "joy", seed=9)
    manifest = poet.home.models / "joy" / "poetstudio.json"
    stat = manifest.stat()
    import os

    os.utime(manifest, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    after = poem(poet, "joy", seed=3, **ENDLESS, max_new_tokens=10)
    assert after != before
    base = next(iter(poet.loader._cache.values()))
    assert len([name for name in base.adapters.values() if name.startswith("joy")]) == 1


def test_first_chunk_is_the_first_line_and_it_is_not_echoed(poet: Poet) -> None:
    seed = "The lamps are out along the quay,"
    chunks = list(poet.stream_poem("joy", f"  {seed}  ", SamplingParams(seed=1, max_new_tokens=20)))
    assert chunks[0] == seed + "\n"
    stats = poet.last_stats
    assert stats is not None
    tokenizer = poet.loader.load(poet.model_info("joy")).tokenizer
    assert stats.prompt_tokens == len(prompt_ids(tokenizer, seed, PoemTokens.of(tokenizer)))
    # The rest is generated text only: the model continues after the seed's newline.
    assert 0 < stats.tokens <= 20
    assert stats.ttft_s is not None and stats.ttft_s > 0


def test_an_empty_seed_generates_from_nothing(poet: Poet) -> None:
    chunks = list(
        poet.stream_poem("joy", "   ", SamplingParams(seed=1, **ENDLESS, max_new_tokens=15))
    )
    stats = poet.last_stats
    assert stats is not None
    assert stats.prompt_tokens == 1
    assert stats.tokens == 15 and stats.stop_reason == STOP_MAX_TOKENS
    assert "".join(chunks).strip()


def test_the_same_seed_gives_the_same_poem(poet: Poet, home: DataHome, tmp_path: Path) -> None:
    first = poem(poet, "joy", "O weep", seed=42, **ENDLESS, max_new_tokens=25)
    fresh = pinned_poet(home, tmp_path / "no-bundled")
    assert poem(fresh, "joy", "O weep", seed=42, **ENDLESS, max_new_tokens=25) == first
    assert poem(poet, "joy", "O weep", seed=43, **ENDLESS, max_new_tokens=25) != first
    # Without a seed one is drawn, reported, and reproduces the poem when passed back.
    unseeded = poem(poet, "joy", "O weep", **ENDLESS, max_new_tokens=25)
    assert poet.last_stats is not None and poet.last_stats.seed is not None
    drawn = poet.last_stats.seed
    assert poem(poet, "joy", "O weep", seed=drawn, **ENDLESS, max_new_tokens=25) == unseeded


def test_cancel_stops_within_one_token(poet: Poet) -> None:
    params = SamplingParams(seed=1, **ENDLESS)
    stats, tokens_at_cancel = cancelled_at_third_token(poet, "joy", "O weep", params)
    assert stats is not None
    assert stats.stop_reason == STOP_CANCELLED
    assert stats.tokens == tokens_at_cancel


def test_cancel_from_another_thread_and_before_start(poet: Poet) -> None:
    cancel = threading.Event()
    cancel.set()
    assert list(poet.stream_poem("joy", "", SamplingParams(), cancel=cancel)) == []
    assert poet.last_stats is not None and poet.last_stats.tokens == 0

    cancel = threading.Event()
    chunks: list[str] = []
    started = threading.Event()

    def consume() -> None:
        for chunk in poet.stream_poem(
            "joy", "x", SamplingParams(**ENDLESS, max_new_tokens=100_000), cancel
        ):
            chunks.append(chunk)
            started.set()

    worker = threading.Thread(target=consume)
    worker.start()
    assert started.wait(30)
    cancel.set()
    worker.join(30)
    assert not worker.is_alive()
    assert poet.last_stats is not None and poet.last_stats.stop_reason == STOP_CANCELLED


def test_closing_the_stream_early_marks_it_cancelled(poet: Poet) -> None:
    stream = poet.stream_poem("joy", "O weep", SamplingParams(seed=1, **ENDLESS))
    next(stream)
    next(stream)
    stream.close()
    assert poet.last_stats is not None and poet.last_stats.stop_reason == STOP_CANCELLED


def test_max_tokens_and_stats(poet: Poet) -> None:
    poem(poet, "sadness", "O weep", seed=1, **ENDLESS, max_new_tokens=30)
    stats = poet.last_stats
    assert stats is not None
    assert stats.tokens == 30 and stats.stop_reason == STOP_MAX_TOKENS
    assert stats.tokens_per_s is not None and stats.tokens_per_s > 0
    assert stats.emotion == "sadness" and stats.device == "cpu"
    assert stats.model == f"user lora {poet.home.models / 'sadness'} (base {stats_base(poet)})"


def stats_base(poet: Poet) -> str:
    return poet.model_info("sadness").base_spec


def scripted(
    poet: Poet,
    monkeypatch: pytest.MonkeyPatch,
    text_parts: list[str | None],
    tokens: PoemTokens | None = None,
) -> ScriptedLM:
    """Make `poet` decode `text_parts` (None = the model's eos) greedily, "x" the runner-up."""
    real = poet.loader.load(poet.model_info("joy"))
    tokenizer = real.tokenizer
    tokens = tokens or real.tokens
    eos = tokens.eos
    script: list[int] = []
    for part in text_parts:
        script.extend([eos] if part is None else tokenizer.encode(part, add_special_tokens=False))
    (fallback,) = tokenizer.encode("x", add_special_tokens=False)
    fake = ScriptedLM(script, fallback, real.exempt.shape[0])
    model = LoadedModel(
        info=real.info,
        module=fake,
        tokenizer=tokenizer,
        context=real.context,
        exempt=real.exempt,
        tokens=tokens,
    )
    monkeypatch.setattr(poet.loader, "load", lambda info, on_progress=None: model)
    return fake


GREEDY = {"temperature": 0.0, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0}


def test_a_model_stops_at_the_eos_its_manifest_records(
    poet: Poet, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = poet.loader.load(poet.model_info("joy")).tokenizer
    (end,) = tokenizer.encode("~", add_special_tokens=False)
    scripted(poet, monkeypatch, ["One\n", "two\n", None, "three\n"], PoemTokens(0, end))
    assert poem(poet, "joy", **GREEDY, min_lines=1) == "One\ntwo\n"
    assert poet.last_stats is not None and poet.last_stats.stop_reason == STOP_EOS


def test_the_loader_reads_poem_tokens_from_the_manifest(poet: Poet) -> None:
    info = poet.model_info("joy")
    tokenizer = poet.loader.load(info).tokenizer
    assert poet.loader.load(info).tokens == PoemTokens.of(tokenizer)
    manifest = info.path / "poetstudio.json"
    recorded = json.loads(manifest.read_text())
    recorded["poem_tokens"] = {"bos": 0, "eos": 3}
    manifest.write_text(json.dumps(recorded))
    os.utime(manifest, (1, 1))  # a new mtime, so the loader sees a changed model
    poet.refresh()
    assert poet.loader.load(poet.model_info("joy")).tokens == PoemTokens(0, 3)


def test_poem_tokens_outside_the_vocabulary_are_refused(poet: Poet) -> None:
    manifest = poet.model_info("joy").path / "poetstudio.json"
    recorded = json.loads(manifest.read_text())
    recorded["poem_tokens"] = {"bos": 0, "eos": 10**9}
    manifest.write_text(json.dumps(recorded))
    os.utime(manifest, (1, 1))
    poet.refresh()
    with pytest.raises(PoetstudioError, match="outside the .*vocabulary"):
        poet.loader.load(poet.model_info("joy"))


def test_eos_is_suppressed_until_min_lines(poet: Poet, monkeypatch: pytest.MonkeyPatch) -> None:
    scripted(poet, monkeypatch, ["One\n", None, "two\nthree\n", None, "four\n"])
    text = poem(poet, "joy", **GREEDY, min_lines=3)
    assert text == "One\nxtwo\nthree\n"
    assert poet.last_stats is not None and poet.last_stats.stop_reason == STOP_EOS


def test_max_lines_counts_the_first_line(poet: Poet, monkeypatch: pytest.MonkeyPatch) -> None:
    scripted(poet, monkeypatch, ["one\ntwo\n\nthree\nfour\n", None])
    text = poem(poet, "joy", "seed", **GREEDY, min_lines=0, max_lines=3)
    assert text == "seed\none\ntwo"
    assert poet.last_stats is not None and poet.last_stats.stop_reason == STOP_MAX_LINES


def test_blank_lines_limit_stanzas(poet: Poet, monkeypatch: pytest.MonkeyPatch) -> None:
    scripted(poet, monkeypatch, ["One\ntwo\n\nthree\n\n\nfour\n", None])
    text = poem(poet, "joy", **GREEDY, min_lines=0, max_stanzas=2)
    assert text == "One\ntwo\n\nthree\n"
    assert poet.last_stats is not None and poet.last_stats.stop_reason == STOP_MAX_STANZAS


def test_default_settings_break_a_word_loop(poet: Poet, monkeypatch: pytest.MonkeyPatch) -> None:
    # A model that would say "long, long, long, ..." forever under greedy decoding.
    scripted(poet, monkeypatch, [" long,"] * 40)
    text = poem(poet, "joy", temperature=0.0, max_new_tokens=40, **ENDLESS)
    assert "long, long, long" not in text


def test_markup_and_control_characters_in_the_seed(poet: Poet) -> None:
    seed = "[bold red]x[/] \x1b[31mred\x07\tand\r\nmore"
    chunks = list(poet.stream_poem("joy", seed, SamplingParams(seed=1, max_new_tokens=5)))
    assert chunks[0] == "[bold red]x[/] [31mred and more\n"
    assert all("\x1b" not in chunk and "\r" not in chunk for chunk in chunks)
    assert clean_first_line("a\u200bb\x00c") == "abc"
    assert clean_output("ok\n\x1b[2Jyes\tno\x00") == "ok\n[2Jyes no"


def test_a_seed_longer_than_the_context_is_truncated_with_a_notice(poet: Poet) -> None:
    seed = "the grey sea sighs beneath the stars " * 200
    chunks = list(
        poet.stream_poem("joy", seed, SamplingParams(seed=1, **ENDLESS, max_new_tokens=20))
    )
    stats = poet.last_stats
    assert stats is not None
    assert any("truncated" in notice for notice in stats.notices)
    assert stats.prompt_tokens < 256
    assert stats.tokens == 20
    assert chunks[0].endswith("\n") and len(chunks[0]) < len(seed)
    assert seed.startswith(chunks[0].strip())


def test_unknown_emotion_and_untrained_emotion(poet: Poet) -> None:
    with pytest.raises(PoetstudioError, match="unknown emotion"):
        list(poet.stream_poem("happy", "", SamplingParams()))
    with pytest.raises(PoetstudioError, match="poetstudio train --emotion fear"):
        poet.load("fear")


def test_no_models_at_all(home: DataHome, tmp_path: Path) -> None:
    poet = Poet(home, device="cpu", bundled_dir=tmp_path / "none")
    assert poet.refresh() == {}
    with pytest.raises(PoetstudioError, match="bundled"):
        list(poet.stream_poem("joy", "", SamplingParams()))


def test_a_corrupt_adapter_fails_clearly_and_others_still_work(poet: Poet) -> None:
    (poet.home.models / "sadness" / "adapter_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(PoetstudioError, match="sadness adapter.*damaged"):
        poet.load("sadness")
    assert poem(poet, "joy", "O weep", seed=1, max_new_tokens=5)


def test_a_missing_base_fails_clearly(poet: Poet, tmp_path: Path) -> None:
    import json

    manifest_path = poet.home.models / "joy" / "poetstudio.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["base"]["spec"] = str(tmp_path / "gone" / "base")
    manifest_path.write_text(json.dumps(manifest))
    poet.refresh()
    with pytest.raises(PoetstudioError, match="base"):
        poet.load("joy")


def test_a_model_trained_during_the_session_appears_on_refresh(poet: Poet, tiny_base: Path) -> None:
    assert "trust" not in poet.refresh()
    build_tiny_lora(tiny_base, poet.home.models / "trust", "trust")
    assert "trust" in poet.refresh()
    assert poem(poet, "trust", "Trust in", seed=1, max_new_tokens=5).startswith("Trust in\n")


@pytest.mark.parametrize(
    "settings",
    [
        {"temperature": -1},
        {"top_p": 0},
        {"top_p": 1.5},
        {"top_k": -2},
        {"max_lines": 0},
        {"max_new_tokens": 0},
        {"repetition_penalty": 0},
    ],
)
def test_bad_sampling_settings_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(PoetstudioError):
        SamplingParams(**settings).validate()


@pytest.mark.parametrize("first", ["sadness", "joy"])
def test_a_broken_adapter_config_leaves_the_base_clean(
    poet: Poet, first: str, tmp_path: Path
) -> None:
    clean = pinned_poet(poet.home, tmp_path / "no-bundled")
    expected = poem(clean, "joy", "O weep", seed=4, **ENDLESS, max_new_tokens=8)
    (poet.home.models / "sadness" / "adapter_config.json").write_text("{")
    if first == "joy":
        poet.load("joy")
    with pytest.raises(PoetstudioError, match="cannot load the sadness adapter"):
        poet.load("sadness")
    assert poem(poet, "joy", "O weep", seed=4, **ENDLESS, max_new_tokens=8) == expected


def test_the_lean_lora_forward_matches_peft(poet: Poet) -> None:
    import torch

    from studio.core import fastlora

    poet.load("sadness")
    loaded = poet.loader.load(poet.model_info("joy"))
    base = loaded.base
    assert base is not None and base.layers
    ids = torch.tensor([[0, 5, 9, 12, 40]])
    with torch.inference_mode():
        lean = loaded.module(input_ids=ids).logits
        assert fastlora.install(base.layers, "not-an-adapter") == 0  # back to peft's forward
        assert base.peft is not None
        base.peft.set_adapter(loaded.adapter)
        reference = loaded.module(input_ids=ids).logits
        assert fastlora.install(base.layers, loaded.adapter) == len(base.layers)
        again = loaded.module(input_ids=ids).logits
    torch.testing.assert_close(lean, reference)
    torch.testing.assert_close(again, reference)


def test_each_row_gets_its_adapter_as_the_batch_narrows(poet: Poet) -> None:
    """A batch narrows as its poems end; the stacked adapters are kept while they cover it, and
    each row scores as its adapter alone does."""
    import torch

    from studio.core import fastlora

    loaded = {name: poet.loader.load(poet.model_info(name)) for name in ("joy", "sadness")}
    base = loaded["joy"].base
    assert base is not None
    names = {key: model.adapter for key, model in loaded.items()}
    module = loaded["joy"].module
    ids = torch.tensor([[0, 5, 9, 12, 40]])
    alone = {}
    with torch.inference_mode():
        for key, name in names.items():
            assert name is not None
            fastlora.install(base.layers, name)
            alone[key] = module(input_ids=ids).logits[0]
        for rows in (["joy", "sadness", "joy"], ["sadness"], ["sadness", "joy"]):
            assert fastlora.install_rows(base.layers, [str(names[row]) for row in rows])
            logits = module(input_ids=ids.expand(len(rows), -1)).logits
            for index, row in enumerate(rows):
                torch.testing.assert_close(logits[index], alone[row])
    # The first stack covered every later batch, so it was never rebuilt.
    assert base.layers[0]._poetstudio_stacked[0] == (names["joy"], names["sadness"])
    # Weights replaced under a stack (moved, cast to another dtype) make it stale.
    with torch.inference_mode():
        for layer in base.layers:
            weight = layer.lora_B[names["joy"]].weight
            weight.data = weight.data * 3.0
        fastlora.install(base.layers, str(names["joy"]))
        tripled = module(input_ids=ids).logits[0]
        assert fastlora.install_rows(base.layers, [str(names["joy"])])
        torch.testing.assert_close(module(input_ids=ids).logits[0], tripled)
    assert not torch.allclose(tripled, alone["joy"])


def test_switching_adapters_leaves_peft_alone_while_every_layer_is_lean(
    poet: Poet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """peft's own switch walks the whole model; only layers on peft's forward need it."""
    from studio.core import fastlora

    joy = poet.loader.load(poet.model_info("joy"))
    sadness = poet.loader.load(poet.model_info("sadness"))
    assert joy.base is not None and joy.base.peft is not None
    switched: list[str] = []
    monkeypatch.setattr(joy.base.peft, "set_adapter", switched.append)
    poet.loader.activate(joy)
    poet.loader.activate(sadness)
    assert switched == []
    monkeypatch.setattr(fastlora, "install", lambda layers, adapter: len(layers) - 1)
    poet.loader.activate(joy)
    assert switched == [joy.adapter]


def test_decoding_threads_follow_the_free_cores(
    poet: Poet, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    before = torch.get_num_threads()
    poet.decode_threads = None  # the fixture pins one thread; this test is about the choice
    monkeypatch.setattr(poet._cpu_share, "free_cores", lambda: 0.2)  # another process is busy
    poem(poet, "joy", seed=1, max_new_tokens=3)
    assert poet.last_stats is not None and poet.last_stats.cpu_threads == 1
    monkeypatch.setattr(poet._cpu_share, "free_cores", lambda: 64.0)
    poem(poet, "joy", seed=1, max_new_tokens=3)
    assert poet.last_stats is not None and poet.last_stats.cpu_threads == before
    poet.decode_threads = 1
    poem(poet, "joy", seed=1, max_new_tokens=3)
    assert poet.last_stats is not None and poet.last_stats.cpu_threads == 1
    assert torch.get_num_threads() == before, "the process's thread count is restored"
