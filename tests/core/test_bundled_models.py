"""The bundled starter models: well-formed, within their size budget, and able to write.

Generating needs the SmolLM2 base that `poetstudio setup` converts into the data home. Those tests
opt in through the `real_base` fixture, which links that base into the test's own home; where it
is absent (`.ci/run` sets it up, unless that fails), they are skipped with the reason, not failed.
"""

from pathlib import Path

import pytest

from models import BUNDLED_DIR
from studio.core.registry import read_model
from trainer.common.bases import OFFLINE_PRESET
from trainer.common.emotions import MODEL_EMOTIONS
from trainer.common.home import DataHome

BUNDLED = sorted(p for p in BUNDLED_DIR.iterdir() if (p / "poetstudio.json").is_file())
MB = 1_000_000


def test_all_nine_emotions_are_bundled() -> None:
    assert [p.name for p in BUNDLED] == sorted(MODEL_EMOTIONS)


def test_bundled_models_fit_their_size_budget() -> None:
    sizes = {p.name: sum(f.stat().st_size for f in p.iterdir()) for p in BUNDLED}
    assert all(size <= 10 * MB for size in sizes.values()), sizes
    assert sum(sizes.values()) <= 100 * MB


@pytest.mark.parametrize("folder", BUNDLED, ids=lambda p: p.name)
def test_bundled_manifest_is_usable(folder: Path) -> None:
    info = read_model(folder, "bundled", folder.name)
    assert info.method == "lora" and info.base_spec == OFFLINE_PRESET
    assert info.manifest["emotion"] == folder.name
    assert info.manifest["metrics"]["best_val_ppl"] > 1
    # They were trained where the base's eos read as its bos, so generation must know their ids.
    assert set(info.manifest["poem_tokens"]) == {"bos", "eos"}
    # Emotions are fine-tuned from the neutral model, as the seed did.
    if folder.name != "neutral":
        assert info.manifest["parent"]["emotion"] == "neutral"


@pytest.mark.slow
@pytest.mark.parametrize("folder", BUNDLED, ids=lambda p: p.name)
def test_bundled_model_loads_and_generates(folder: Path, real_base: DataHome) -> None:
    from studio.core.generation.poet import Poet
    from studio.core.generation.settings import SamplingParams

    poet = Poet(real_base, device="cpu", bundled_dir=BUNDLED_DIR)
    info = read_model(folder, "bundled", folder.name)
    params = SamplingParams(seed=1, max_new_tokens=6, min_lines=1)
    text = "".join(poet.stream_model(info, "The lamps are out along the quay", params))
    assert text.startswith("The lamps are out along the quay\n")
    assert poet.last_stats is not None and poet.last_stats.tokens >= 1
