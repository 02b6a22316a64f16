"""Model-FLOPs utilisation: FLOPs per token by method, the device peak table, and MFU."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.common.errors import PoetstudioError
from trainer.training.flops import (
    PEAK_ENV,
    ModelShape,
    flops_per_token,
    mfu,
    model_shape,
    peak_flops,
)


@pytest.fixture(autouse=True)
def _no_peak_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PEAK_ENV, raising=False)


def test_a_full_fine_tune_costs_six_flops_per_weight_plus_attention() -> None:
    shape = ModelShape(trained=1000, frozen=0, layers=2, width=8)
    assert flops_per_token(shape, block_size=16) == 6 * 1000 + 6 * 2 * 16 * 8


def test_lora_costs_four_per_frozen_weight_and_six_per_adapter_weight() -> None:
    shape = ModelShape(trained=10, frozen=1000, layers=2, width=8)
    assert flops_per_token(shape, block_size=16) == 4 * 1000 + 6 * 10 + 6 * 2 * 16 * 8


def test_longer_blocks_cost_more_attention_per_token() -> None:
    shape = ModelShape(trained=0, frozen=100, layers=3, width=4)
    assert flops_per_token(shape, 512) - flops_per_token(shape, 128) == 6 * 3 * (512 - 128) * 4


def test_the_tiny_gpt2_counts_its_matmuls_and_its_tied_head_once(tiny_base: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    config = model.config
    shape = model_shape(model)
    # GPT-2 blocks: qkv (3d^2), attention out (d^2), MLP up and down (4d^2 each); plus the head.
    blocks = config.n_layer * 12 * config.n_embd**2
    head = config.vocab_size * config.n_embd
    assert shape == ModelShape(blocks + head, 0, config.n_layer, config.n_embd)


def test_lora_splits_the_base_as_frozen_from_the_adapters(tiny_base: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_base)
    full = model_shape(base).trained
    lora = get_peft_model(base, LoraConfig(r=2, target_modules="all-linear", task_type="CAUSAL_LM"))
    adapters = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert model_shape(lora) == ModelShape(adapters, full, base.config.n_layer, base.config.n_embd)


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H200", 989.0),
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA A10", 125.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA GeForce RTX 4090", 165.0),
    ],
)
def test_the_peak_is_looked_up_by_the_device_name(name: str, tflops: float) -> None:
    assert peak_flops(name) == tflops * 1e12


@pytest.mark.parametrize("name", ["NVIDIA A10G", "Tesla T4", "Some Future GPU", None, ""])
def test_a_device_the_table_does_not_know_has_no_peak_rather_than_an_a100s(
    name: str | None,
) -> None:
    assert peak_flops(name) is None


def test_the_environment_gives_the_peak_of_a_device_the_table_does_not_know(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PEAK_ENV, "70")
    assert peak_flops("NVIDIA A10G") == 70e12
    assert peak_flops(None) == 70e12


@pytest.mark.parametrize("value", ["fast", "0", "-5", "nan", "inf"])
def test_a_bad_peak_in_the_environment_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(PEAK_ENV, value)
    with pytest.raises(PoetstudioError, match=PEAK_ENV) as caught:
        peak_flops("NVIDIA H200")
    assert "\n" not in str(caught.value)


def test_mfu_is_the_share_of_the_peak_and_none_without_one() -> None:
    assert mfu(250_000, 4e8, 989e12) == pytest.approx(250_000 * 4e8 / 989e12)
    assert mfu(1000.0, 1e6, None) is None


def test_mfu_is_shown_as_a_percentage_or_a_dash() -> None:
    from trainer.training.events import format_mfu

    assert format_mfu(None) == "-"
    assert format_mfu(0.314) == "31%" and format_mfu(0.021) == "2.1%"
