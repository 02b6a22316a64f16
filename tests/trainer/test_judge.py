"""The semantic judge tells the 8 emotions apart on lines it has never seen."""

from pathlib import Path

import pytest

from trainer.common.emotions import EMOTIONS
from trainer.evaluation import judge as judge_module
from trainer.evaluation.judge import DESCRIPTORS, load_judge

# Hand-written for this test, five per emotion, none of them a descriptor sentence.
HELD_OUT: dict[str, tuple[str, ...]] = {
    "anger": (
        "How dare they lie to me, I could tear the walls down",
        "My blood boils at the insult he flung across the table",
        "Curse the tyrant and his cruel and greedy hand",
        "She spat the words out, shaking with fury",
        "I will have vengeance for every blow they dealt",
    ),
    "anticipation": (
        "Tomorrow the ship comes in, and I cannot sleep for waiting",
        "The bride counts the hours until the bells will ring",
        "We stand at the gate, watching for the first light of spring",
        "Any minute now the letter will arrive",
        "The runners crouch at the line, ready for the signal",
    ),
    "disgust": (
        "The meat was crawling with maggots and the smell made me gag",
        "His greasy hands left smears of filth on everything",
        "A putrid swamp of sewage and rotting fish",
        "I could vomit at the sight of that festering wound",
        "Such vile and nauseating cruelty turns my stomach",
    ),
    "fear": (
        "Footsteps behind me on the empty street at midnight",
        "The child hides under the blanket, shaking at every creak",
        "I am afraid the wolves will come down from the hills",
        "Cold sweat and a pounding heart as the floor gives way",
        "What terror waits for us beyond the burning walls",
    ),
    "joy": (
        "The children run laughing through the golden meadow",
        "We danced all night and sang until the morning came",
        "Oh happy day, my love has come home to me",
        "Bright bells of gladness ring across the town",
        "My heart leaps up with pure delight",
    ),
    "sadness": (
        "She sits alone beside the empty cradle and weeps",
        "The letters of the dead lie yellowing in a drawer",
        "Farewell, my friend, I will not see your face again",
        "Grey rain upon the grave, and no one comes to mourn",
        "All my hopes have withered and my tears will not stop",
    ),
    "surprise": (
        "I opened the door and there, to my astonishment, stood my long-lost brother",
        "Without warning the sky split open with light",
        "Who would have thought the old beggar was a king",
        "A sudden gasp went through the crowd at the unexpected news",
        "I stared in disbelief; the impossible had happened",
    ),
    "trust": (
        "Lean on me, I will never let you fall",
        "The old dog waits faithfully by his master's side",
        "I give you my word, and my word is my bond",
        "We put our lives in the captain's steady hands",
        "My honest friend has never once betrayed me",
    ),
}


def test_held_out_lines_are_not_descriptors() -> None:
    descriptors = {line.lower() for lines in DESCRIPTORS.values() for line in lines}
    assert set(HELD_OUT) == set(DESCRIPTORS) == set(EMOTIONS)
    assert all(line.lower() not in descriptors for lines in HELD_OUT.values() for line in lines)


def test_judge_labels_held_out_lines_far_above_chance() -> None:
    pytest.importorskip(judge_module.JUDGE_PACKAGE)
    judge = load_judge()
    assert judge is not None
    texts = [line for emotion in EMOTIONS for line in HELD_OUT[emotion]]
    truth = [emotion for emotion in EMOTIONS for _ in HELD_OUT[emotion]]
    predicted = judge.classify(texts)
    accuracy = sum(p == t for p, t in zip(predicted, truth, strict=True)) / len(truth)
    # Chance is 1/8 = 12.5%; the measured figure is in the report of the change that added this.
    assert accuracy >= 0.5, list(zip(truth, predicted, strict=True))
    vectors = judge.embed(texts[:2])
    assert vectors.shape == (2, 384)
    assert vectors.norm(dim=-1).sub(1).abs().max() < 1e-4


def test_judge_is_absent_without_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(judge_module, "JUDGE_PACKAGE", "no_such_package_for_poetstudio")
    assert judge_module.model_folder() is None
    assert load_judge() is None


def test_judge_folder_is_found_without_importing_sentence_transformers() -> None:
    pytest.importorskip(judge_module.JUDGE_PACKAGE)
    import sys

    folder = judge_module.model_folder()
    assert isinstance(folder, Path) and (folder / "config.json").is_file()
    assert "sentence_transformers" not in sys.modules
