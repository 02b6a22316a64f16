"""The Textual studio: pick an emotion (or a blend of two), type a first line, watch the poem
stream in, save it; or write it line by line from candidate lines (studio/tui/line_by_line.py).

Threads: the model load, generation and saving run in thread workers (the training panel runs
its own, to watch jobs); they talk to widgets only through posted messages or `call_from_thread`.
Torch and transformers are imported by those workers after the first frame is on screen, never
before.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import events, on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, TabbedContent, TabPane

from models import BUNDLED_DIR
from studio.core.blend import blend_choices, parse_blend
from studio.core.cowrite.writer import DEFAULT_CANDIDATES
from studio.core.generation import settings as generation_settings
from studio.core.generation.poet import Poet, fresh_seed
from studio.core.generation.settings import SEED_LIMIT, SamplingParams
from studio.core.generation.stats import STOP_CANCELLED, GenerationStats
from studio.core.history import History, SessionPoem
from studio.core.poemstats import runtime_label, speed_label, ttft_label
from studio.core.registry import ModelInfo, ModelScan, no_models_hint, train_hint, untrained
from studio.core.settings import (
    DEFAULT_BLEND_MIX,
    StudioSettings,
    load_settings,
    save_settings,
    strength_label,
)
from studio.tui.key_bursts import (
    CARET,
    CARET_HOLD_S,
    LINE_BREAK_KEYS,
    escape_key,
    in_burst,
    is_escape_echo,
)
from studio.tui.line_by_line import WHOLE_PLACEHOLDER, LineByLine
from studio.tui.widgets.blend_picker import BlendPicker
from studio.tui.widgets.candidate_list import CandidateList
from studio.tui.widgets.emotion_meter import EmotionMeter
from studio.tui.widgets.emotion_picker import EmotionPicker
from studio.tui.widgets.first_line import FirstLineInput
from studio.tui.widgets.literal import as_markup
from studio.tui.widgets.poem_panel import PoemPanel
from studio.tui.widgets.sampling_controls import SamplingControls
from studio.tui.widgets.saved_poems import SavedPoemsView
from studio.tui.widgets.status_bar import StatusBar
from studio.tui.widgets.steer_box import SteerBox
from studio.tui.widgets.training_panel import TrainingPanel
from trainer.common.emotions import MODEL_EMOTIONS
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome, resolve_home

if TYPE_CHECKING:
    from studio.core.poemfile import SavedPoem
    from trainer.common.form import Form


@dataclass
class _Run:
    """One generation request in flight."""

    id: int
    poem: SessionPoem
    params: SamplingParams
    cancel: threading.Event = field(default_factory=threading.Event)


class PoemChunk(Message):
    """Worker → UI: more text of run `run_id`, and the EmoLex counts of the whole poem so far."""

    def __init__(self, run_id: int, chunk: str, counts: dict[str, int]) -> None:
        super().__init__()
        self.run_id = run_id
        self.chunk = chunk
        self.counts = counts


class PoemDone(Message):
    """Worker → UI: run `run_id` ended (finished, stopped or failed with `error`)."""

    def __init__(
        self, run_id: int, stats: GenerationStats | None, title: str, error: str = ""
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self.stats = stats
        self.title = title
        self.error = error


class StatusUpdate(Message):
    """Worker → UI: new values for some status-bar fields."""

    def __init__(self, **fields: str) -> None:
        super().__init__()
        self.fields = fields


class PoetStudioApp(LineByLine):
    """The poetstudio terminal app."""

    CSS_PATH = "app.tcss"
    TITLE = "poetstudio"
    SUB_TITLE = "emotion-tuned verse"

    BINDINGS = [
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+r", "regenerate", "Regenerate"),
        Binding("ctrl+n", "variation", "Variation"),
        # Line by line (studio/tui/line_by_line.py); here, since a key's bindings are not merged.
        Binding("ctrl+n", "new_draft", "New poem"),
        # Priority: the app saves before any widget can take the key as text.
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("pageup", "history(-1)", "Older", key_display="PgUp"),
        Binding("pagedown", "history(1)", "Newer", key_display="PgDn"),
        Binding("ctrl+up", "emotion(-1)", "Previous emotion", show=False),
        Binding("ctrl+down", "emotion(1)", "Next emotion", show=False),
        Binding("f1", "show_tab('write')", "Write"),
        Binding("f2", "show_tab('train')", "Train"),
        Binding("f3", "show_tab('saved')", "Saved"),
    ]

    def __init__(
        self,
        home: DataHome | None = None,
        device: str | None = None,
        *,
        bundled_dir: Path = BUNDLED_DIR,
        seed: int | None = None,
        precision: str = "auto",
    ) -> None:
        """`seed` fixes the sampling seed of the first poem (later ones count up from it);
        `precision` (auto, fp32 or bf16) is the dtype the models load in."""
        super().__init__()
        self.home = home or resolve_home()
        self.bundled_dir = Path(bundled_dir)
        self.settings: StudioSettings = load_settings(self.home.settings_file)
        self.history = History()
        self._seeds: Callable[[], int] = (
            itertools.count(seed).__next__ if seed is not None else fresh_seed
        )
        # Made now (it imports nothing heavy); its scan of the model folders is the app's too.
        self.poet = Poet(
            self.home, device=device, bundled_dir=self.bundled_dir, precision=precision
        )
        self._poet_lock = threading.Lock()
        self._run: _Run | None = None
        self._ready_form: Form | None = None  # the form whose tables were last asked for
        self._run_ids = itertools.count(1)
        self._settings_error_shown = False
        # Poems being appended to the poems file now (by id): each is saved once.
        self._saving: set[int] = set()
        # Key bursts (see studio.tui.key_bursts): the last key's time, and a "^" held back.
        self._last_key_time: float | None = None
        self._held_caret: events.Key | None = None
        # The last save note toasted, and when: a burst of ctrl+s toasts it once, not a pile.
        self._toasted_note: tuple[str, float] = ("", float("-inf"))
        self._init_line_by_line()

    # ----- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="write", id="tabs"):
            with TabPane("Write", id="write"), Horizontal(id="write-row"):
                with Vertical(id="left-col"):
                    yield EmotionPicker(self.settings.emotion, id="picker")
                    yield BlendPicker(
                        self.settings.emotion,
                        self.settings.blend_with,
                        self.settings.blend_mix or DEFAULT_BLEND_MIX,
                        id="blend",
                    )
                    yield SamplingControls(self._sampling_values(), id="sampling")
                with Vertical(id="centre-col"):
                    yield FirstLineInput(placeholder=WHOLE_PLACEHOLDER, id="first-line")
                    yield PoemPanel(id="poem")
                    yield CandidateList(id="candidates")
                    yield SteerBox(self.settings.candidates or DEFAULT_CANDIDATES, id="steer")
                yield EmotionMeter(id="meter")
            with TabPane("Models & training", id="train"):
                yield TrainingPanel(self.home, id="training")
            with TabPane("Saved poems", id="saved"):
                yield SavedPoemsView(id="saved-view")
        yield StatusBar(id="status")
        yield Footer()

    def _sampling_values(self) -> dict[str, Any]:
        """Each controlled setting as remembered, else its default (0 is a choice, not unset)."""
        remembered = self.settings.sampling
        return {
            spec.name: remembered.get(spec.name, spec.default)
            for spec in generation_settings.controlled()
        }

    def on_mount(self) -> None:
        self.query_one(EmotionMeter).show({}, self.blend_spec)
        self.query_one(StatusBar).set(guidance=self._guidance_label())
        self._refresh_models()
        self._offer_draft()
        self._apply_mode(opening=True)
        self.query_one("#first-line", Input).focus()

    def on_ready(self) -> None:
        # The first frame is on screen: now pay for torch and the model.
        self._get_ready()

    # ----- state helpers ----------------------------------------------------------------------

    @property
    def blend_spec(self) -> str:
        """What poems are written with now: the emotion, or its blend's canonical spec."""
        return self.query_one(BlendPicker).spec

    @property
    def generating(self) -> bool:
        """Whether a poem is streaming now."""
        return self._run is not None

    @property
    def scan(self) -> ModelScan:
        """The last scan of the model folders: the generation core's."""
        return self.poet.scan

    def _apply_scan(self, scan: ModelScan) -> None:
        """Show a fresh scan of the model folders in the picker and the training panel."""
        hints = untrained(scan)
        for emotion, problem in scan.problems.items():
            if emotion in hints:
                hints[emotion] = f"{problem}; retrain: {train_hint(emotion)}"
        self.query_one(EmotionPicker).set_models(set(scan.models), hints, scan.problems)
        self.query_one(BlendPicker).set_models(set(scan.models))
        self.query_one(TrainingPanel).set_models(scan.models, hints, scan.problems)
        if not scan.models:
            self.query_one(PoemPanel).show_notice(no_models_hint())
            self.query_one(StatusBar).set(state="no models")

    def _params(self, seed: int | None) -> SamplingParams:
        values = self.query_one(SamplingControls).values
        return generation_settings.make_params({**values, "seed": seed})

    def _guidance_label(self) -> str:
        """The strength the next poem asks for, as the status line names it."""
        return strength_label(self.query_one(SamplingControls).values["strength"])

    def _save_settings(self) -> None:
        try:
            save_settings(self.home.settings_file, self.settings)
        except OSError as exc:
            if not self._settings_error_shown:
                self._settings_error_shown = True
                self.notify(
                    f"settings not remembered: {exc.strerror or exc}",
                    severity="warning",
                    markup=False,
                )

    # ----- generation -------------------------------------------------------------------------

    def start_poem(self, first_line: str, seed: int) -> None:
        """Cancel any poem in flight and start writing a new one with the blend picked now."""
        self._cancel_run()
        emotion = self.blend_spec
        params = self._params(seed)
        poem = SessionPoem(
            emotion=emotion,
            first_line=first_line,
            seed=seed,
            sampling={k: v for k, v in params.to_dict().items() if k != "seed"},
        )
        self.history.add(poem)
        self._run = _Run(next(self._run_ids), poem, params)
        self._show_current()
        self.query_one(StatusBar).set(
            state=f"writing ({emotion})", guidance=self._guidance_label(), ttft="", speed=""
        )
        self._generate(self._run)

    def _cancel_run(self) -> None:
        """Abandon the poem in flight: it stays in the history as stopped, as far as it got."""
        if self._run is None:
            return
        from studio.core.title import title_for

        self._run.cancel.set()
        poem = self._run.poem
        poem.finished = True
        poem.stop_reason = STOP_CANCELLED
        poem.title = title_for(poem.text)
        self._run = None

    @work(thread=True, exclusive=True, exit_on_error=False, group="generate")
    def _generate(self, run: _Run) -> None:
        """Stream run's poem on a worker thread; every result goes back as a message."""
        from studio.core.title import title_for
        from trainer.common.emotions import count_emotions

        poem = run.poem
        text = ""
        stats = None
        try:
            with self._poet_lock:
                if run.cancel.is_set():
                    self.post_message(PoemDone(run.id, None, ""))
                    return
                poet = self.poet
                info = poet.load(poem.emotion, self._progress_reporter(poem.emotion))
                self.post_message(
                    StatusUpdate(
                        model=_model_label(poem.emotion, info),
                        device=_device_label(poet, poem.emotion),
                    )
                )
                stream = poet.stream_poem(poem.emotion, poem.first_line, run.params, run.cancel)
                for chunk in stream:
                    text += chunk
                    self.post_message(PoemChunk(run.id, chunk, count_emotions(text)))
                stats = poet.last_stats
        except PoetstudioError as exc:
            self.post_message(PoemDone(run.id, stats, "", str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - any failure must reach the user, not kill the app
            self.post_message(PoemDone(run.id, stats, "", f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(PoemDone(run.id, stats, title_for(text) if text.strip() else ""))

    def _model_status(self, spec: str, info: ModelInfo) -> None:
        """Name the model that writes now, and its device, in the status bar."""
        self.query_one(StatusBar).set(
            model=_model_label(spec, info), device=_device_label(self.poet, spec)
        )

    def _progress_reporter(self, emotion: str) -> Callable[[float, str], None]:
        def report(fraction: float, message: str) -> None:
            self.post_message(StatusUpdate(state=f"loading {emotion} {fraction:.0%}: {message}"))

        return report

    def _has_models(self, emotion: str) -> bool:
        """Whether every emotion of `emotion` (or a blend spec) has a model to load."""
        return all(part in self.scan.models for part in parse_blend(emotion).emotions)

    def _get_ready(self) -> None:
        """Get the next poem's models, and its form's tables, ready in the background."""
        params = self._params(None)
        self._ready_form = params.poem_form()
        self._warm_up(self.blend_spec, params)

    @work(thread=True, exit_on_error=False, group="form")
    def _prepare_form(self, emotion: str, params: SamplingParams) -> None:
        """Build a newly chosen form's tables in the background, quietly: the status line keeps
        what it says (a poem reports any problem when it starts)."""
        if params.poem_form().is_free or not self._has_models(emotion):
            return
        with contextlib.suppress(Exception), self._poet_lock:
            self.poet.prepare(emotion, params)

    @work(thread=True, exclusive=True, exit_on_error=False, group="load")
    def _warm_up(self, emotion: str, params: SamplingParams) -> None:
        """Import the heavy libraries and load the models of `emotion` (an emotion or a blend
        spec), so the first poem starts fast; a form's tables too (`Poet.prepare`: the first
        sonnet's first token took over a second without them)."""
        if not self._has_models(emotion):
            return
        try:
            with self._poet_lock:
                poet = self.poet
                info = poet.load(emotion, self._progress_reporter(emotion))
                device = _device_label(poet, emotion)
                if not params.poem_form().is_free:
                    poet.prepare(emotion, params)
        except PoetstudioError as exc:
            self.post_message(StatusUpdate(state="ready", model=f"{emotion}: {exc}"))
            return
        except Exception as exc:  # noqa: BLE001 - a failed preload must not take the app down
            self.post_message(StatusUpdate(state="ready", model=f"{emotion}: {exc}"))
            return
        if not self.generating:
            self.post_message(StatusUpdate(state="ready"))
        self.post_message(StatusUpdate(model=_model_label(emotion, info), device=device))

    def on_poem_chunk(self, message: PoemChunk) -> None:
        run = self._run
        if run is None or message.run_id != run.id:
            return
        run.poem.text += message.chunk
        run.poem.counts = message.counts
        if self.history.current is run.poem:
            self.query_one(PoemPanel).append(message.chunk)
            self.query_one(EmotionMeter).show(message.counts, run.poem.emotion)

    def on_poem_done(self, message: PoemDone) -> None:
        run = self._run
        if run is None or message.run_id != run.id:
            return
        self._run = None
        poem = run.poem
        stats = message.stats
        status = self.query_one(StatusBar)
        if message.error:
            if not poem.text:
                self.history.remove(poem)
            poem.notice = message.error
            self.notify(message.error, title="Cannot write", severity="error", markup=False)
            status.set(state="error")
            self._show_error(message.error)
            return
        poem.finished = True
        poem.title = message.title
        if stats is not None:
            poem.stop_reason = stats.stop_reason or ""
            poem.model = stats.model or ""
            poem.runtime = runtime_label(stats)
            poem.applied_strength = stats.strength
            poem.notice = "; ".join(stats.notices)
            if stats.notices:
                self.notify(poem.notice, severity="warning", markup=False)
            status.set(
                guidance=strength_label(stats.strength),
                ttft=ttft_label(stats),
                speed=speed_label(stats),
            )
            if stats.device and stats.backend:  # what really decoded it
                status.set(device=f"{stats.device} · {stats.backend}")
        stopped = poem.stop_reason == STOP_CANCELLED or run.cancel.is_set()
        status.set(state="stopped" if stopped else "ready")
        if self.history.current is poem:
            self._show_current()

    def _show_current(self) -> None:
        if self.line_by_line:
            return  # the draft is on screen
        poem = self.history.current
        if poem is None:
            return
        self.query_one(PoemPanel).show(poem, self.history.index + 1, len(self.history))
        self.query_one(EmotionMeter).show(poem.counts, poem.emotion)

    def _show_error(self, error: str) -> None:
        if self.line_by_line:
            return  # a whole poem's error, stopped on the way to line by line
        if self.history.current is None:
            self.query_one(PoemPanel).show_notice(error)
        else:
            panel = self.query_one(PoemPanel)
            current = self.history.current
            shown = replace(current, notice=error)
            panel.show(shown, self.history.index + 1, len(self.history))

    # ----- input and actions ------------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        """Repair key bursts from the terminal before any binding or widget sees them: a "^"
        that stood for an escape is that escape, and a paste's line breaks never submit the
        first-line box (studio.tui.key_bursts says how each is told)."""
        if not isinstance(event, events.Key) or event.is_forwarded:
            await super().on_event(event)
            return
        event = self.option_digit(event)
        held, self._held_caret = self._held_caret, None
        if held is not None:
            await super().on_event(escape_key() if is_escape_echo(held, event) else held)
        previous, self._last_key_time = self._last_key_time, event.time
        if event.key == CARET:
            self._held_caret = event
            self.set_timer(CARET_HOLD_S, functools.partial(self._release_caret, event))
        elif (
            event.key in LINE_BREAK_KEYS
            and in_burst(previous, event)
            and isinstance(self.focused, FirstLineInput)
        ):
            # Posted, like the keys forwarded before it, so it lands after them.
            self.focused.post_message(FirstLineInput.LineBreak())
        else:
            await super().on_event(event)

    async def _release_caret(self, caret: events.Key) -> None:
        """No ctrl key followed `caret` in its burst: it is a "^" typed, let it through."""
        if self._held_caret is caret:
            self._held_caret = None
            await super().on_event(caret)

    @on(Input.Submitted, "#first-line")
    def _first_line_submitted(self, event: Input.Submitted) -> None:
        if self.line_by_line:
            self.line_submitted(event.value)
        else:
            self.start_poem(event.value, self._seeds())

    def action_stop(self) -> None:
        """Stop the poem (or the candidate lines) streaming; what was written stays."""
        if self.line_by_line:
            self.stop_lines()
            return
        if self._run is None:
            return
        self._run.cancel.set()
        self.query_one(StatusBar).set(state="stopping")

    def action_regenerate(self) -> None:
        """Write the poem on screen again, with the emotion and sampling controls set now."""
        poem = self.history.current
        if poem is None:
            self.start_poem(self.query_one("#first-line", Input).value, self._seeds())
        else:
            self.start_poem(poem.first_line, poem.seed)

    def action_variation(self) -> None:
        """Write the next variation: same first line, the next sampling seed."""
        poem = self.history.current
        if poem is None:
            self.start_poem(self.query_one("#first-line", Input).value, self._seeds())
        else:
            self.start_poem(poem.first_line, (poem.seed + 1) % SEED_LIMIT)

    def action_history(self, delta: int) -> None:
        """Page through this session's poems."""
        if self.history.move(delta) is not None:
            self._show_current()

    def action_emotion(self, delta: int) -> None:
        """Pick the previous or next emotion."""
        self.query_one(EmotionPicker).step(delta)

    def action_show_tab(self, tab: str) -> None:
        """Switch to the write, train or saved tab."""
        self.query_one(TabbedContent).active = tab
        if tab == "write":
            self.query_one("#first-line", Input).focus()

    @on(EmotionPicker.Changed)
    def _emotion_changed(self, event: EmotionPicker.Changed) -> None:
        self.settings.emotion = event.emotion
        self._save_settings()
        self.query_one(BlendPicker).set_primary(event.emotion)
        self._aim_changed()

    @on(BlendPicker.Changed)
    def _blend_changed(self, event: BlendPicker.Changed) -> None:
        self.settings.blend_with = event.second
        self.settings.blend_mix = event.mix
        self._save_settings()
        self._aim_changed()

    def _aim_changed(self) -> None:
        """The emotion or blend changed: rewrite the poem in flight in it, or get ready for it."""
        spec = self.blend_spec
        if self.line_by_line:
            self.lines_aim_changed()
            self._get_ready()
            return
        if self._run is not None:
            poem = self._run.poem
            if poem.emotion != spec:
                # Switching mid-stream: the same first line and seed, now in the new blend.
                self.start_poem(poem.first_line, poem.seed)
            return
        current = self.history.current
        self.query_one(EmotionMeter).show(current.counts if current else {}, spec)
        self._get_ready()

    @on(SamplingControls.Changed)
    def _sampling_changed(self, event: SamplingControls.Changed) -> None:
        self.settings.sampling = dict(event.values)
        self._save_settings()
        status = self.query_one(StatusBar)
        status.set(note="")
        if self._run is None:
            status.set(guidance=self._guidance_label())
            params = self._params(None)
            form = params.poem_form()
            if form != self._ready_form:
                self._ready_form = form
                self._prepare_form(self.blend_spec, params)
        if self.line_by_line:
            self._show_draft()  # the form's targets for the next line may have changed

    @on(SamplingControls.Invalid)
    def _sampling_invalid(self, event: SamplingControls.Invalid) -> None:
        # Not applied: the poems keep the last valid settings until the text is fixed.
        self.query_one(StatusBar).set(note=f"not applied: {event.error}")

    def on_status_update(self, message: StatusUpdate) -> None:
        self.query_one(StatusBar).set(**message.fields)

    # ----- saving -----------------------------------------------------------------------------

    def action_save(self) -> None:
        """Append the poem on screen to the poems file, once."""
        if self.line_by_line:
            self.save_draft()
            return
        poem = self.history.current
        if poem is None:
            self.notify("Nothing to save yet: write a poem first.", severity="warning")
            return
        if self._run is not None and self._run.poem is poem:
            # Saved only once it is whole: a half-written poem would be saved as if finished.
            self._save_note("not saved: the poem is still being written (wait, or press Esc)")
            return
        if poem.saved_to or id(poem) in self._saving:
            self._save_note(f"already saved to {poem.saved_to or self.home.poems_file}")
            return
        if not poem.text.strip():
            # An empty entry would read back as a phantom poem: never save one, say why.
            self.notify(
                "Not saved: this poem is empty (the model wrote nothing). Write another one.",
                severity="warning",
            )
            return
        self._saving.add(id(poem))
        self._save(poem, self.home.poems_file)

    def _save_note(self, note: str) -> None:
        """Say why ctrl+s saved nothing, in the status bar and a toast (one while the same
        note's toast is still up)."""
        self.query_one(StatusBar).set(note=note)
        last, at = self._toasted_note
        now = time.monotonic()
        if note == last and now - at < self.NOTIFICATION_TIMEOUT:
            return
        self._toasted_note = (note, now)
        self.notify(note[:1].upper() + note[1:] + ".", severity="warning", markup=False)

    @work(thread=True, exit_on_error=False, group="save")
    def _save(self, poem: SessionPoem, path: Path) -> None:
        """Append `poem` to `path` on a worker thread (the append ends with an fsync)."""
        from studio.core.poemfile import append_poem

        try:
            append_poem(path, _saved_poem(poem))
        except PoetstudioError as exc:  # append_poem turns every OSError into one
            self.call_from_thread(self._save_failed, poem, str(exc))
            return
        self.call_from_thread(self._saved, poem, path)

    def _save_failed(self, poem: SessionPoem, reason: str) -> None:
        self._saving.discard(id(poem))
        poem.notice = f"not saved: {reason}"
        self.notify(reason, title="Save failed", severity="error", timeout=10, markup=False)
        if self.history.current is poem:
            self._show_current()

    def _saved(self, poem: SessionPoem, path: Path) -> None:
        self._saving.discard(id(poem))
        poem.notice = ""
        poem.saved_to = str(path)
        self.query_one(StatusBar).set(note=f"saved to {path}")
        self.notify(f"Saved to {path}", title="Poem saved", markup=False)
        if self.history.current is poem:
            self._show_current()
        if self.query_one(TabbedContent).active == "saved":
            self.query_one(SavedPoemsView).load(path)

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "saved":
            self.query_one(SavedPoemsView).load(self.home.poems_file)

    # ----- training ---------------------------------------------------------------------------

    @on(TrainingPanel.ModelsChanged)
    def _models_changed(self, event: TrainingPanel.ModelsChanged) -> None:
        self._refresh_models()
        for emotion in event.emotions:
            self.notify(f"The {emotion} model is trained and ready to write.", markup=False)

    def _refresh_models(self) -> None:
        """Scan the model folders again; the generation core writes with the same scan."""
        self.poet.refresh()
        self._apply_scan(self.scan)

    def action_refresh_models(self) -> None:
        """Scan the model folders again (new or changed models appear in the picker)."""
        self._refresh_models()
        self.notify(f"{len(self.scan.models)} of {len(MODEL_EMOTIONS)} emotions have a model.")

    # ----- command palette --------------------------------------------------------------------

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Save poem", "Append the poem on screen to the poems file", self.action_save
        )
        yield SystemCommand(
            "Regenerate", "Write the poem again with the settings now", self.action_regenerate
        )
        yield SystemCommand(
            "Next variation", "Same first line, next sampling seed", self.action_variation
        )
        yield SystemCommand("Stop", "Stop the poem being written", self.action_stop)
        yield SystemCommand(
            "Line by line" if not self.line_by_line else "Whole poem",
            "Write the next poem line by line from candidate lines"
            if not self.line_by_line
            else "Write whole poems at once",
            self.action_toggle_mode,
        )
        if self.line_by_line:
            yield SystemCommand("Finish", "Write the rest of the poem at once", self.action_finish)
            yield SystemCommand("Undo line", "Take back the last line", self.action_take_back)
            yield SystemCommand("New lines", "New candidates, new seeds", self.regenerate_lines)
            yield SystemCommand("New poem", "Start a new co-written poem", self.action_new_draft)
        yield SystemCommand(
            "Refresh models", "Scan the model folders again", self.action_refresh_models
        )
        for poem in self.saved_to_reopen():
            yield SystemCommand(
                # The palette reads titles as markup: escaped, a saved title shows as it is.
                f"Keep writing: {as_markup(poem.title)}",
                "Open this saved poem line by line, to add lines or rewrite one",
                functools.partial(self.keep_writing, poem),
            )
        for tab, title in (
            ("write", "Write"),
            ("train", "Models & training"),
            ("saved", "Saved poems"),
        ):
            yield SystemCommand(
                f"Show {title}", f"Switch to the {title} tab", _bind(self.action_show_tab, tab)
            )
        for emotion in MODEL_EMOTIONS:
            yield SystemCommand(
                f"Emotion: {emotion}",
                f"Write {emotion} poems",
                _bind(self.query_one(EmotionPicker).pick, emotion),
            )
        blend = self.query_one(BlendPicker)
        no_blend = functools.partial(blend.choose, None)
        yield SystemCommand("Blend: none", "Write in the picked emotion alone", no_blend)
        for emotion in blend_choices():
            if emotion == self.query_one(EmotionPicker).emotion:
                continue  # a blend with itself is the emotion alone
            yield SystemCommand(
                f"Blend with: {emotion}",
                f"Mix {emotion} into the picked emotion",
                _bind(blend.choose, emotion),
            )
        for emotion in MODEL_EMOTIONS:
            yield SystemCommand(
                f"Train {emotion}",
                f"Start `{train_hint(emotion)}` as a background job",
                _bind(self.query_one(TrainingPanel).train, emotion),
            )


def _bind(func: Callable[[str], Any], value: str) -> Callable[[], None]:
    def call() -> None:
        func(value)

    return call


def _device_label(poet: Poet, emotion: str) -> str:
    """The status line's device: where, and which backend decodes `emotion` (`cpu · llama`)."""
    return f"{poet.device} · {poet.decoder(emotion)}"


def _model_label(spec: str, info: ModelInfo) -> str:
    """The status line's model: what is written (emotion or blend) and where its model is from."""
    return f"{spec} · {info.source} {info.method}"


def _saved_poem(poem: SessionPoem) -> SavedPoem:
    """The poems-file entry for a session poem."""
    from studio.core.poemfile import saved_poem

    return saved_poem(
        poem.text,
        poem.emotion,
        first_line=poem.first_line,
        model=poem.model,
        sampling=poem.sampling,
        seed=poem.seed,
        strength=poem.applied_strength,
        title=poem.title,
        runtime=poem.runtime,
    )
