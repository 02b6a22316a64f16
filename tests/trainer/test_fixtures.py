"""The shared fixtures build loadable models, so other tests can rely on them."""

from pathlib import Path

from tests.helpers.models import build_tiny_lora


def test_tiny_base_generates(tiny_base: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    ids = tokenizer("The lamps are out", return_tensors="pt")
    out = model.generate(
        **ids, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.eos_token_id
    )
    assert out.shape[1] > ids["input_ids"].shape[1]


def test_tiny_lora_loads(tiny_base: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    folder = build_tiny_lora(tiny_base, tmp_path / "joy", "joy")
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), folder)
    assert (folder / "poetstudio.json").exists()
    assert any("lora_B" in name for name, _ in model.named_parameters())
