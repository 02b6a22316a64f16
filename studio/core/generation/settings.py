"""Every generation setting, declared once: type, default, ranges, help, step and where it shows.

A `SamplingParams` field made with `setting(...)` is all a new setting needs. `write`'s options
(studio/cli/write.py), the studio's sampling controls (studio/tui/widgets/sampling_controls.py),
the settings file (studio/core/settings.py), a saved poem's record and `SamplingParams.validate`
all read the declarations through `declared()`, so they never disagree on a range or a default.

A setting has the range `write` and the engine accept (`cli`), and where the studio offers less
(a control past it only degenerates verse), a narrower `studio` range. `control` says which
settings get a studio control ("input": a number typed in place, "stepper": stepped on a grid of
`step`, "select": one of `choices`, "text": text its `grammar` checks, empty for unset);
`saved` whether a poem's record keeps it.

The declarations are read through this module's `SamplingParams` at call time (`declared`,
`make_params`), so a subclass set in its place (a test does this) adds a setting everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, get_type_hints

from trainer.common.errors import PoetstudioError
from trainer.common.form import (
    METERS,
    PRESETS,
    Form,
    check_form_name,
    check_meter,
    parse_form,
    parse_scheme,
    parse_syllables,
)

# Generation seeds: one limit for the CLI, the studio and fresh random seeds, small enough to type.
# (Training seeds have their own limit, trainer.training.config.TRAIN_SEED_LIMIT.)
SEED_LIMIT = 2**31
# Counts (lines, tokens, stanzas) past this are typos.
MAX_COUNT = 1_000_000
# Guidance strength: the default was chosen by `poetstudio eval --strength ...` (models/README.md).
DEFAULT_STRENGTH = 1.0
# What runs the model (studio/core/generation/backends/choice.py): auto picks llama.cpp where the
# `fast` extra is installed and the models allow it, else torch.
BACKENDS = ("auto", "torch", "llama")


def check_backend(name: str) -> str:
    """`name` if it is a backend, else a one-line error listing them."""
    if name not in BACKENDS:
        raise PoetstudioError(f"backend must be one of {', '.join(BACKENDS)}, not {name!r}")
    return name


@dataclass(frozen=True)
class Setting:
    """One generation setting as every surface sees it (made by `setting`, read by `declared`)."""

    name: str  # the SamplingParams field
    kind: type  # int, float, or str for a setting read by its own grammar
    default: Any
    help: str
    cli: tuple[float, float]  # what `write` and the engine accept
    studio: tuple[float, float]  # what the studio's control offers (the cli range unless narrower)
    step: float  # the studio control's step
    control: str | None  # "input", "stepper", "select", "text" or None: no studio control
    saved: bool  # kept in a saved poem's record
    flag: str  # the `write` option, e.g. --top-p
    label: str  # how messages and the studio name it, e.g. top-p
    open_low: bool = False  # the range's low end itself is refused: (low, high]
    also: tuple[tuple[float, str], ...] = ()  # values allowed outside the range, and their names
    note: str = ""  # appended to the range in messages, e.g. "(0 turns it off)"
    optional: bool = False  # None is allowed (the seed: None draws a fresh one)
    grammar: Callable[[str], Any] | None = None  # checks a text setting; raises its own error
    default_help: str = ""  # the default as the help says it, where the value alone would not
    choices: tuple[str, ...] = ()  # the values a "select" control offers

    def range_text(self, studio: bool = False) -> str:
        """The accepted values in words, as the help and error messages say them."""
        low, high = self.studio if studio else self.cli
        if self.open_low:
            text = f"in ({low:g}, {high:g}]"
        elif self.kind is int:
            text = f"a whole number from {int(low)} to {int(high)}"
        else:
            text = f"a number from {low:g} to {high:g}"
        if self.also and not studio:
            text = " or ".join(f"{value:g} ({name})" for value, name in self.also) + " or " + text
        return f"{text} {self.note}" if self.note else text

    def accepts(self, value: Any, studio: bool = False) -> bool:
        """Whether `value` is allowed; written as "inside the range", so NaN fails."""
        if value is None:
            return self.optional
        if self.kind is str:
            try:
                self.check(value)
            except PoetstudioError:
                return False
            return True
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if not studio and any(value == special for special, _ in self.also):
            return True
        low, high = self.studio if studio else self.cli
        above = low < value if self.open_low else low <= value
        return math.isfinite(value) and above and value <= high

    def check(self, value: Any) -> Any:
        """`value` if `write` and the engine accept it, else a one-line PoetstudioError."""
        if self.kind is str and value is not None:
            if not isinstance(value, str):
                raise PoetstudioError(f"{self.label} must be text")
            if self.grammar is not None:
                self.grammar(value)
            return value
        if not self.accepts(value):
            raise PoetstudioError(f"{self.label} must be {self.range_text()}")
        return value

    def parse(self, text: Any, studio: bool = True) -> Any:
        """The value typed in `text` (or read from a file), or None when it is not allowed."""
        try:
            value = self.kind(str(text).strip())
        except (TypeError, ValueError):
            return None
        return value if self.accepts(value, studio) else None

    def help_text(self) -> str:
        """The `write` option's help: what it does, what it accepts, its default."""
        shown = self.default_help or str(self.default)
        if self.kind is str:
            return f"{self.help} (default {shown})"
        return f"{self.help} Takes {self.range_text().removeprefix('in ')}. (default {shown})"


def setting(
    default: Any,
    help: str,
    *,
    cli: tuple[float, float] = (0.0, 0.0),
    studio: tuple[float, float] | None = None,
    step: float = 1.0,
    control: str | None = None,
    saved: bool = True,
    flag: str | None = None,
    label: str | None = None,
    open_low: bool = False,
    also: tuple[tuple[float, str], ...] = (),
    note: str = "",
    grammar: Callable[[str], Any] | None = None,
    default_help: str = "",
    choices: tuple[str, ...] = (),
) -> Any:
    """A SamplingParams field that is also a `write` option, a studio setting and a record key.

    The option is named after the field (`max_lines` is `--max-lines`) unless `flag` says
    otherwise; `label` defaults to the field name with spaces. A text setting (a `str` field)
    has no range: its `grammar` checks it and raises a one-line error of its own.
    """
    meta = {
        "help": help,
        "cli": cli,
        "studio": studio or cli,
        "step": step,
        "control": control,
        "saved": saved,
        "flag": flag,
        "label": label,
        "open_low": open_low,
        "also": also,
        "note": note,
        "grammar": grammar,
        "default_help": default_help,
        "choices": choices,
    }
    return field(default=default, metadata={"setting": meta})


@dataclass
class SamplingParams:
    """How to sample a poem. The defaults keep verse from looping ("long, long, long").

    The repetition penalty and the n-gram ban never apply to tokens without a letter or digit
    (newlines, punctuation), which verse legitimately repeats on every line.
    """

    # Below the lowest temperature the scaled scores overflow to inf and NaN.
    temperature: float = setting(
        0.8,
        "Sampling temperature; 0 is greedy.",
        cli=(1e-3, 10.0),
        studio=(0.05, 3.0),
        step=0.05,
        control="input",
        also=((0.0, "greedy"),),
    )
    top_k: int = setting(
        50,
        "Keep the k likeliest tokens.",
        cli=(0, MAX_COUNT),
        label="top-k",
        note="(0 turns it off)",
    )
    top_p: float = setting(
        0.95,
        "Nucleus mass.",
        cli=(0.0, 1.0),
        studio=(0.05, 1.0),
        step=0.05,
        control="input",
        label="top-p",
        open_low=True,
    )
    repetition_penalty: float = setting(
        1.15,
        "Divide the scores of tokens already used.",
        cli=(0.0, 10.0),
        step=0.05,
        open_low=True,
        note="(1 turns it off)",
    )
    no_repeat_ngram_size: int = setting(
        3,
        "Never repeat a run of this many tokens.",
        cli=(0, MAX_COUNT),
        label="no-repeat n-gram size",
        note="(0 turns it off)",
    )
    min_lines: int = setting(4, "No ending before this many lines.", cli=(0, MAX_COUNT))
    max_lines: int = setting(
        14, "Stop after this many lines.", cli=(1, MAX_COUNT), studio=(1, 200), control="input"
    )
    max_new_tokens: int = setting(
        200,
        "Stop after this many tokens.",
        cli=(1, MAX_COUNT),
        flag="--max-tokens",
        label="max new tokens",
    )
    max_stanzas: int = setting(3, "Stop before a stanza past this many.", cli=(1, MAX_COUNT))
    # Emotion guidance: 0 samples the emotion model alone (studio/core/generation/processors/
    # guidance.py). The studio stops at 3: near 2 verse already turns into repeated emotion words.
    strength: float = setting(
        DEFAULT_STRENGTH,
        "Emotion guidance: 0 samples the emotion model alone, higher steers further from the "
        "neutral model.",
        cli=(0.0, 5.0),
        studio=(0.0, 3.0),
        step=0.25,
        control="stepper",
    )
    seed: int | None = setting(
        None,
        "Sampling seed for reproducible poems (poem i uses seed+i).",
        cli=(0, SEED_LIMIT - 1),
        default_help="a fresh one",
    )
    # Form (trainer/common/form.py): a preset, and parts that replace the preset's.
    form: str = setting(
        "free",
        f"The poem's form: {', '.join(PRESETS)} (not --format, the poems file's format).",
        grammar=check_form_name,
        control="select",
        choices=tuple(PRESETS),
    )
    rhyme: str | None = setting(
        None,
        "Rhyme scheme: a letter per line, - or x for an unrhymed one, spaces between stanzas "
        "(ABAB CDCD EFEF GG).",
        grammar=parse_scheme,
        default_help="the form's",
        control="text",
        label="scheme",
    )
    syllables: str | None = setting(
        None,
        "Syllables per line: 10, 5,7,5 or 8-9,8-9,5-6 (a shorter list repeats).",
        grammar=parse_syllables,
        default_help="the form's",
        control="text",
    )
    meter: str | None = setting(
        None,
        f"Meter, a soft aim: {', '.join(METERS)} or none.",
        grammar=check_meter,
        default_help="the form's",
    )
    line_tries: int = setting(
        3,
        "Write a formed line up to this many times when the form forced a word on it that the "
        "model all but refused; the first unforced try is kept (1 keeps every line as it comes).",
        cli=(1, 8),
    )
    # A poem's settings keep the backend asked for; its runtime names the one that really ran.
    backend: str = setting(
        "auto",
        "What runs the model: auto (llama.cpp where installed and the model allows, else torch), "
        "torch, or llama.",
        grammar=check_backend,
        choices=BACKENDS,
    )

    # Not a user setting (no option, control or record key): eval turns the guard off to measure
    # what it changes (studio/core/generation/processors/stutter.py).
    stutter_guard: bool = True

    def validate(self) -> SamplingParams:
        """Return self if every setting is in range, else raise a one-line PoetstudioError."""
        for spec in declared(type(self)):
            spec.check(getattr(self, spec.name))
        self.poem_form()
        return self

    def poem_form(self) -> Form:
        """The form these settings ask for: the preset with the parts given replacing its own."""
        return parse_form(self.form, self.rhyme, self.syllables, self.meter)

    def to_dict(self) -> dict[str, Any]:
        """The settings a poem's record keeps, as a plain dict (text settings left unset, such as
        a rhyme scheme when the form's own applies, are left out)."""
        unset = {spec.name for spec in declared(type(self)) if spec.kind is str}
        saved = {spec.name for spec in declared(type(self)) if spec.saved}
        values = asdict(self).items()
        return {k: v for k, v in values if k in saved and not (v is None and k in unset)}


def declared(params_class: type[SamplingParams] | None = None) -> tuple[Setting, ...]:
    """Every generation setting, in declaration order (of `SamplingParams` unless given)."""
    cls = params_class or SamplingParams
    hints = get_type_hints(cls)
    specs = []
    for spec in fields(cls):
        meta = spec.metadata.get("setting")
        if meta is None:
            continue
        kinds = getattr(hints[spec.name], "__args__", (hints[spec.name],))
        kind = next(kind for kind in kinds if kind is not type(None))
        default = None if spec.default is MISSING else spec.default
        specs.append(
            Setting(
                name=spec.name,
                kind=kind,
                default=default,
                help=meta["help"],
                cli=meta["cli"],
                studio=meta["studio"],
                step=meta["step"],
                control=meta["control"],
                saved=meta["saved"],
                flag=meta["flag"] or "--" + spec.name.replace("_", "-"),
                label=meta["label"] or spec.name.replace("_", " "),
                open_low=meta["open_low"],
                also=meta["also"],
                note=meta["note"],
                optional=type(None) in kinds,
                grammar=meta["grammar"],
                default_help=meta["default_help"],
                choices=meta["choices"],
            )
        )
    return tuple(specs)


def setting_named(name: str) -> Setting:
    """The declaration of one setting."""
    return next(spec for spec in declared() if spec.name == name)


def controlled() -> tuple[Setting, ...]:
    """The settings the studio shows a control for, in declaration order."""
    return tuple(spec for spec in declared() if spec.control)


def make_params(values: dict[str, Any]) -> SamplingParams:
    """SamplingParams from values by setting name (absent or None: the default), validated."""
    known = {spec.name for spec in declared()}
    given = {k: v for k, v in values.items() if k in known and v is not None}
    return SamplingParams(**given).validate()


def default_params() -> SamplingParams:
    """Every setting at its default."""
    return SamplingParams()
