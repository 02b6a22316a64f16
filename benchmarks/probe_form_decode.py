"""Probe: do the form helpers compose into lines that keep a form, on a real bundled model?

A plain sampling loop (KV cache, temperature, top-k; no emotion guidance, no best-of-n, no
backtracking) over the smollm2 base with one bundled LoRA adapter, constrained only by
studio/core/formtokens: the syllable budget mask on every token, and the rhyme trie forced once
a rhymed line has at most `--rhyme-room` syllables left and some rhyme fits them. It is not the
engine's form processor, only evidence for it: the form measures of what it writes, its tokens/s
next to the same loop unconstrained, and the poems themselves to read.

Run:  .venv/bin/python benchmarks/probe_form_decode.py [--forms ballad limerick sonnet haiku]
      [--poems 5] [--emotion joy] [--vocabulary 8000] [--rhyme-room 3]
      [--base ~/.local/share/poetstudio/bases/smollm2-135m]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    import sys

    sys.path.insert(0, str(ROOT))
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.core import formtokens as ft
    from trainer.common import phonetics
    from trainer.common.form import parse_form
    from trainer.evaluation.formscore import poem_lines, score_poems

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forms", nargs="+", default=["ballad", "limerick", "sonnet", "haiku"])
    parser.add_argument("--poems", type=int, default=5)
    parser.add_argument("--emotion", default="joy")
    parser.add_argument("--base", default="~/.local/share/poetstudio/bases/smollm2-135m")
    parser.add_argument("--rhyme-room", type=int, default=3)
    parser.add_argument("--vocabulary", type=int, default=None, help="rhyme words kept, by id")
    parser.add_argument("--temperature", type=float, default=0.9)
    parser.add_argument("--top-k", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    base = str(Path(args.base).expanduser())
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(ROOT / "models" / args.emotion)).eval()
    vocab = model.get_output_embeddings().weight.shape[0]

    def encode(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False))

    started = time.perf_counter()
    table = ft.TokenTable.from_tokenizer(tokenizer, vocab_size=vocab)
    index = phonetics.RhymeIndex(ft.vocabulary_words(table, encode, limit=args.vocabulary))
    setup = time.perf_counter() - started
    newline = encode("\n")[0]
    enders = torch.zeros(vocab, dtype=torch.bool)
    enders[list(ft.word_enders(table))] = True
    masks: dict[ft.BudgetStep, torch.Tensor] = {}

    def budget(step: ft.BudgetStep) -> torch.Tensor:
        if step not in masks:
            masks[step] = torch.tensor(ft.budget_mask(table, step))
        return masks[step]

    def write(form_name: str | None, seed: int) -> tuple[str, int, float]:
        form = parse_form(form_name or "free")
        generator = torch.Generator().manual_seed(seed)
        ids = [tokenizer.bos_token_id]
        past = None
        text = ""
        rhyme: tuple[ft.RhymeTrie, list[int]] | None = None
        budget_tokens = form.token_budget(lines=8)
        began = time.perf_counter()
        for _ in range(budget_tokens):
            with torch.no_grad():
                out = model(
                    input_ids=torch.tensor([ids[-1:]]), past_key_values=past, use_cache=True
                )
            past = out.past_key_values
            scores = out.logits[0, -1].float() / args.temperature
            position = ft.form_position(text, form)
            if position.finished and not form.is_free:
                break
            allowed = torch.ones(vocab, dtype=torch.bool)
            allowed[tokenizer.eos_token_id] = form.is_free
            target = position.line.syllables
            step = None
            if target is not None:
                state = ft.line_state(position.text)
                step = ft.budget_step(state, target, position.line.ends_stanza)
            if position.break_due:
                allowed = torch.zeros(vocab, dtype=torch.bool)
                allowed[newline] = True
            elif rhyme is not None:
                trie, spelled = rhyme
                following, can_end = trie.step(spelled)
                allowed = torch.zeros(vocab, dtype=torch.bool)
                allowed[list(following)] = True
                if can_end:
                    allowed |= enders & (budget(step) if step is not None else True)
            elif step is not None and target is not None:
                allowed &= budget(step)
                if position.rhyme_word and 0 < step.room <= args.rhyme_room:
                    spent = target[1] - step.room
                    fits = range(max(target[0] - spent, 1), step.room + 1)
                    words = ft.rhyme_targets(index, position.rhyme_word, fits)
                    if words:
                        trie = ft.RhymeTrie(words, encode)
                        rhyme = (trie, [])
                        allowed = torch.zeros(vocab, dtype=torch.bool)
                        allowed[list(trie.step([])[0])] = True
            scores = scores.masked_fill(~allowed, float("-inf"))
            top = torch.topk(scores, min(args.top_k, int(allowed.sum())))
            choice = top.indices[torch.multinomial(top.values.softmax(-1), 1, generator=generator)]
            token = int(choice)
            if rhyme is not None:
                trie, spelled = rhyme
                if token in trie.step(spelled)[0]:
                    spelled.append(token)
                else:
                    rhyme = None  # an ender: the rhyme word is complete
            ids.append(token)
            text += table.texts[token]
            if token == tokenizer.eos_token_id:
                break
        return text, len(ids) - 1, time.perf_counter() - began

    report: dict[str, object] = {"setup_seconds": round(setup, 2)}
    for form_name in args.forms:
        poems, tokens, seconds = [], 0, 0.0
        free_tokens, free_seconds = 0, 0.0
        for seed in range(args.poems):
            text, count, took = write(form_name, seed)
            poems.append(text)
            tokens, seconds = tokens + count, seconds + took
            _, count, took = write(None, seed)
            free_tokens, free_seconds = free_tokens + count, free_seconds + took
        score = score_poems([poem_lines(p) for p in poems], parse_form(form_name))
        report[form_name] = {
            "scores": {k: v for k, v in score.to_dict().items() if isinstance(v, float)},
            "tokens_per_second": round(tokens / seconds, 1),
            "free_tokens_per_second": round(free_tokens / free_seconds, 1),
            "poems": poems,
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
