"""Re-score the forms of a saved `poetstudio eval --form` report with the current form measures.

Reads a report's `eval.json` (every formed poem and its seed is kept there), scores each poem's
rhyme, syllables and meter again with trainer.evaluation.formscore (the typed first line, told
apart by the case's prompt, is the writer's), and prints the pooled Form table of the Markdown
report, the fidelity and its bootstrap against free verse unchanged. For a measure that changed
after a long run; a fresh `poetstudio eval --form ...` gives the same figures.

Run:  PYTHONPATH=. .venv/bin/python benchmarks/rescore_forms.py REPORT_FOLDER/eval.json
"""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from trainer.evaluation.formcost import form_markdown  # noqa: E402
from trainer.evaluation.metrics import (  # noqa: E402
    EVAL_PROMPTS,
    EVAL_SEED,
    EvalCase,
    ModelEval,
    form_counts,
)


def main() -> None:
    report = json.loads(Path(sys.argv[1]).read_text())
    names = {f.name for f in fields(ModelEval)}
    rows = []
    for raw in report["results"]:
        row = ModelEval(**{k: v for k, v in raw.items() if k in names})
        if row.form is not None:
            cases = [
                EvalCase(s - EVAL_SEED, EVAL_PROMPTS[(s - EVAL_SEED) % len(EVAL_PROMPTS)], s)
                for s in row.seeds
            ]
            row.form_score = form_counts(list(zip(cases, row.poems, strict=True)), row.form)
        rows.append(row)
    print("\n".join(form_markdown(rows)))


if __name__ == "__main__":
    main()
