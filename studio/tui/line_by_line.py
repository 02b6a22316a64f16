"""Line by line: the studio's co-writing mode, over studio/core/cowrite.

After the first line (or from nothing) the studio writes K candidate next lines at once; the
writer accepts one (1..K on the list, alt+1..K anywhere), edits one (e, then Enter), types their
own, takes the last line back (ctrl+z), asks for new ones (r), steers the next line (a word to
use, to rhyme with, a topic), rewrites a line of the poem (pick it, w) or lets the model finish
the poem (ctrl+f). Every accepted line is kept in the data home at once (the core's Draft), so a
crash or a quit loses nothing: the draft is offered back when the studio opens.

Threads: candidates are written on a worker thread, one CoWriter (and its kept cache) at a time,
under the app's model lock; the worker reports through posted messages. The draft, the list and
the poem on screen belong to the UI thread: a run gets a copy of the poem's lines, so a key can
change the poem while candidates still stream (a run whose id is no longer the app's is ignored).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from textual import events, on, work
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input

from studio.core.cowrite.draft import Draft, DraftLine, draft_path
from studio.core.cowrite.writer import MAX_CANDIDATES
from studio.core.generation.settings import SamplingParams
from studio.core.generation.stats import GenerationStats
from studio.core.generation.steer import Steer
from studio.core.registry import no_models_hint
from studio.core.settings import LINE_BY_LINE, WHOLE_POEM, StudioSettings
from studio.tui.widgets.candidate_list import CandidateList
from studio.tui.widgets.emotion_meter import EmotionMeter
from studio.tui.widgets.poem_panel import PoemPanel
from studio.tui.widgets.saved_poems import read_tail
from studio.tui.widgets.status_bar import StatusBar
from studio.tui.widgets.steer_box import SteerBox
from trainer.common.emotions import count_emotions
from trainer.common.errors import PoetstudioError
from trainer.common.home import DataHome

if TYPE_CHECKING:
    from studio.core.cowrite.writer import CoWriter
    from studio.core.generation.poet import Poet
    from studio.core.history import History
    from studio.core.poemfile import SavedPoem
    from studio.core.registry import ModelInfo, ModelScan

# Runs: candidates for the next line, candidates for a line of the poem, or the rest of the poem.
NEXT, REWRITE, FINISH = "next", "rewrite", "finish"
# Terminals send alt+digit as an escape and the digit, which Textual reads as the character macOS
# types with Option and that digit; line by line, while candidates are shown, they accept.
OPTION_DIGITS = {"¡": 1, "™": 2, "£": 3, "¢": 4, "∞": 5, "§": 6, "¶": 7, "•": 8}
LINE_PLACEHOLDER = "Your line, then Enter (empty: new candidates)"
WHOLE_PLACEHOLDER = "First line (or leave empty), then Enter"
# Actions that belong to one mode only (the footer shows the keys of the mode in force).
_WHOLE_ONLY = frozenset({"regenerate", "variation", "history"})
_LINES_ONLY = frozenset({"take_back", "finish", "accept", "new_draft"})


@dataclass
class _LineRun:
    """One run of candidates (or of "finish") in flight."""

    id: int
    kind: str  # NEXT, REWRITE or FINISH
    count: int
    emotion: str
    params: SamplingParams
    steer: Steer
    number: int | None = None  # the line a REWRITE writes
    cancel: threading.Event = field(default_factory=threading.Event)
    done: bool = False


@dataclass
class _Editing:
    """A candidate put in the line box to edit: accepted as edited if changed, else chosen."""

    run_id: int
    text: str


class CandidateUpdate(Message):
    """Worker → UI: candidate `row` of run `run_id` now reads `text`."""

    def __init__(self, run_id: int, row: int, text: str, done: bool) -> None:
        super().__init__()
        self.run_id = run_id
        self.row = row
        self.text = text
        self.done = done


class CandidatesDone(Message):
    """Worker → UI: run `run_id` ended with `texts` (in the order to show), or failed."""

    def __init__(
        self,
        run_id: int,
        texts: Sequence[str],
        notices: Sequence[str] = (),
        stats: GenerationStats | None = None,
        error: str = "",
    ) -> None:
        super().__init__()
        self.run_id = run_id
        self.texts = list(texts)
        self.notices = list(notices)
        self.stats = stats
        self.error = error


class LineByLine(App[None]):
    """The line-by-line mode of PoetStudioApp (which supplies the model, settings and controls)."""

    BINDINGS = [
        Binding("f4", "line_by_line(True)", "Line by line"),
        Binding("f4", "line_by_line(False)", "Whole poem"),
        Binding("alt+1", "accept(1)", "Accept", key_display="alt+1…K"),
        *(Binding(f"alt+{n}", f"accept({n})", show=False) for n in range(2, MAX_CANDIDATES + 1)),
        Binding("ctrl+z", "take_back", "Undo line"),
        Binding("ctrl+f", "finish", "Finish"),
    ]

    if TYPE_CHECKING:
        # Supplied by PoetStudioApp.
        home: DataHome
        settings: StudioSettings
        poet: Poet
        _poet_lock: threading.Lock
        history: History

        @property
        def scan(self) -> ModelScan: ...

        @property
        def blend_spec(self) -> str: ...
        def _params(self, seed: int | None) -> SamplingParams: ...
        def _save_settings(self) -> None: ...
        def _cancel_run(self) -> None: ...
        def _show_current(self) -> None: ...
        def _progress_reporter(self, emotion: str) -> Callable[[float, str], None]: ...
        def _model_status(self, spec: str, info: ModelInfo) -> None: ...
        def _save_note(self, note: str) -> None: ...

    def _init_line_by_line(self) -> None:
        """Set up the mode's state (called from the app's __init__)."""
        self._line_run: _LineRun | None = None
        self._line_ids = iter(range(1, 2**62))
        self._draft: Draft | None = None
        self._draft_error = ""  # a damaged draft file: kept as it is, co-writing refused
        self._draft_saved = False  # saved to the poems file, and unchanged since
        self._confirm_new = False  # ctrl+n once on an unsaved draft: again drops it
        self._editing: _Editing | None = None
        self._line_stats: GenerationStats | None = None
        self._line_notice = ""
        # Used on the worker thread only: the co-writer (with its cache) and the record's stats.
        self._cowriter: CoWriter | None = None
        self._stats_for: tuple[tuple[str, str], GenerationStats] | None = None
        self._finish_text = ""  # what "finish" has written so far

    @property
    def line_by_line(self) -> bool:
        """Whether the studio writes line by line now."""
        return self.settings.mode == LINE_BY_LINE

    @property
    def line_draft(self) -> Draft | None:
        """The co-written poem, once line by line has been used (or a draft was kept)."""
        return self._draft

    @property
    def candidate_texts(self) -> list[str]:
        """The candidate lines on screen, as they stand."""
        return self.query_one(CandidateList).texts

    # ----- the mode ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Each mode's keys work (and show in the footer) in that mode only."""
        if action == "line_by_line":
            return bool(parameters and parameters[0]) != self.line_by_line
        if action in _WHOLE_ONLY:
            return not self.line_by_line
        if action in _LINES_ONLY:
            return self.line_by_line
        return True

    def action_line_by_line(self, on: bool) -> None:
        """Switch between writing whole poems and writing line by line (remembered)."""
        self.settings.mode = LINE_BY_LINE if on else WHOLE_POEM
        self._save_settings()
        self._apply_mode()
        state = "line by line" if on else "whole poems"
        self.query_one(StatusBar).set(state=f"writing {state}")

    def action_toggle_mode(self) -> None:
        """Switch to the other mode."""
        self.action_line_by_line(not self.line_by_line)

    def _apply_mode(self, opening: bool = False) -> None:
        """Show the mode in force: its widgets, its poem, its keys (`opening`: the studio is
        opening, with nothing on screen to replace yet)."""
        on = self.line_by_line
        if on:
            self._cancel_run()
        else:
            self._stop_line_run()
            self._line_run = None
            self._editing = None
        for widget in (self.query_one(CandidateList), self.query_one(SteerBox)):
            widget.display = on
        box = self.query_one("#first-line", Input)
        box.placeholder = LINE_PLACEHOLDER if on else WHOLE_PLACEHOLDER
        panel = self.query_one(PoemPanel)
        panel.set_line_by_line(on)
        if on:
            self._ensure_draft()
            self._show_draft()
        elif not opening:
            self.query_one(CandidateList).reset()
            if panel.has_focus:
                box.focus()
            if self.history.current is None:
                panel.show_notice("" if self.scan.models else no_models_hint())
            self._show_current()
        self.refresh_bindings()

    def _offer_draft(self) -> None:
        """At start: a kept draft is shown (line by line) or mentioned (whole poems)."""
        try:
            draft = Draft.open(self.home)
        except PoetstudioError as exc:
            self._draft_error = str(exc)
            self.notify(self._draft_error, title="Draft not read", severity="error", markup=False)
            return
        if draft is None or not draft.texts:
            return
        self._draft = draft
        count = sum(1 for line in draft.texts if line)
        if self.line_by_line:
            self._line_notice = f"your draft is back ({count} lines); ctrl+n starts a new poem"
            self.notify(f"Your draft is back: {count} lines.", title="Draft", markup=False)
        else:
            self.notify(
                f"A line-by-line draft of {count} lines is kept: press F4 to go on writing it.",
                title="Draft",
                markup=False,
            )

    def _ensure_draft(self) -> Draft:
        if self._draft is None:
            self._draft = Draft.start(self.home, self.blend_spec)
        return self._draft

    def _show_draft(self) -> None:
        """The draft on screen, with the line being written after it."""
        draft = self._ensure_draft()
        run = self._line_run
        pending: str | None = ""  # the next line: the highlighted candidate as it stands
        if run is not None and run.kind == FINISH:
            pending = self._finish_text
        elif run is not None and run.kind == REWRITE:
            pending = None  # the line being written is in the poem, picked
        else:
            candidates = self.query_one(CandidateList)
            row = candidates.highlighted
            texts = candidates.texts
            pending = texts[row] if row is not None and row < len(texts) else ""
        sampling = self._params(None).to_dict()
        notice = self._draft_error or self._line_notice
        spec = self.blend_spec
        self.query_one(PoemPanel).show_draft(draft.text, spec, sampling, pending, notice)
        self.query_one(EmotionMeter).show(count_emotions(draft.text), spec)

    # ----- runs -------------------------------------------------------------------------------

    def _start_lines(self, kind: str, number: int | None = None) -> None:
        """Stop any run and start one: candidates for the next line or line `number`, or the
        rest of the poem."""
        self._stop_line_run()
        if self._draft_error:
            self._say(self._draft_error)
            return
        draft = self._ensure_draft()
        steer = Steer()
        if kind != FINISH:
            try:
                steer = self.query_one(SteerBox).steer()
            except PoetstudioError as exc:
                self._say(str(exc))
                return
        count = 1 if kind == FINISH else self.query_one(SteerBox).count
        # No seed: the core draws fresh ones for every run (candidate i: seed + i), and keeps its
        # plan while the emotion and the settings stay.
        params = self._params(None)
        run = _LineRun(next(self._line_ids), kind, count, self.blend_spec, params, steer, number)
        self._line_run = run
        self._finish_text = ""
        self._line_notice = ""
        candidates = self.query_one(CandidateList)
        if kind == FINISH:
            candidates.reset()
        else:
            candidates.show(count, "Next line" if kind == NEXT else f"Line {number}")
        self._show_draft()
        what = {NEXT: f"writing {count} lines", REWRITE: f"rewriting line {number}"}
        state = what.get(kind, "finishing the poem")
        self.query_one(StatusBar).set(state=f"{state} ({run.emotion})", ttft="", speed="")
        self._write_lines(run, draft.texts)

    def _stop_line_run(self) -> None:
        """Stop the run in flight (its candidates stay as they stand)."""
        run = self._line_run
        if run is not None and not run.done:
            run.cancel.set()
            run.done = True

    @work(thread=True, exit_on_error=False, group="lines")
    def _write_lines(self, run: _LineRun, lines: list[str]) -> None:
        """Write `run` on a worker thread; every result goes back as a message."""
        from studio.core.cowrite.writer import CoWriter

        texts: list[str] = []
        notices: list[str] = []
        stats = None
        try:
            with self._poet_lock:
                if run.cancel.is_set():
                    self.post_message(CandidatesDone(run.id, []))
                    return
                info = self.poet.load(run.emotion, self._progress_reporter(run.emotion))
                self.call_from_thread(self._model_status, run.emotion, info)
                writer = self._cowriter
                if writer is None:
                    writer = self._cowriter = CoWriter(self.poet, run.emotion)
                writer.emotion, writer.params, writer.lines = run.emotion, run.params, lines
                if run.kind == NEXT:
                    updates = writer.stream(run.count, run.steer, run.cancel)
                elif run.kind == REWRITE:
                    updates = writer.rewrite(run.number or 1, run.count, run.steer, run.cancel)
                else:
                    updates = writer.finish(run.cancel)
                for update in updates:
                    self.post_message(CandidateUpdate(run.id, update.row, update.text, update.done))
                texts = [candidate.text for candidate in writer.candidates]
                notices = list(writer.notices)
                stats = self._record_stats(run)
        except PoetstudioError as exc:
            self.post_message(CandidatesDone(run.id, texts, error=str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - any failure must reach the user, not kill the app
            self.post_message(CandidatesDone(run.id, texts, error=f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(CandidatesDone(run.id, texts, notices, stats))

    def _record_stats(self, run: _LineRun) -> GenerationStats:
        """What writes the lines (model, runtime, the strength applied), for the saved record;
        planned once while the emotion and the settings stay (worker thread, model lock held)."""
        from studio.core.blend import parse_blend

        key = (run.emotion, repr(run.params))
        if self._stats_for is None or self._stats_for[0] != key:
            blend = parse_blend(run.emotion)
            plan = self.poet.plan(blend, self.poet.resolve(blend), "", run.params)
            self._stats_for = (key, plan.stats)
        return self._stats_for[1]

    def on_candidate_update(self, message: CandidateUpdate) -> None:
        run = self._line_run
        if run is None or message.run_id != run.id or run.done:
            return
        if run.kind == FINISH:
            self._finish_text = message.text
        else:
            candidates = self.query_one(CandidateList)
            candidates.update(message.row, message.text, message.done)
            if message.row != candidates.highlighted:
                return
        self._show_draft()

    def on_candidates_done(self, message: CandidatesDone) -> None:
        run = self._line_run
        if run is None or message.run_id != run.id:
            return
        stopped = run.cancel.is_set()
        run.done = True
        status = self.query_one(StatusBar)
        if message.stats is not None:
            self._line_stats = message.stats
        if message.error:
            self._say(message.error)
            self.notify(message.error, title="Cannot write", severity="error", markup=False)
            status.set(state="error")
            self.query_one(CandidateList).reset()
            self._show_draft()
            return
        if message.notices:
            self._line_notice = "; ".join(message.notices)
        if run.kind == FINISH:
            self._line_run = None
            self._add_finished(message.texts[0] if message.texts else self._finish_text, run)
            status.set(state="stopped" if stopped else "ready")
            return
        if not stopped:
            heading = "Next line" if run.kind == NEXT else f"Line {run.number}, ranked"
            self.query_one(CandidateList).replace_all(message.texts, heading)
        status.set(state="stopped" if stopped else "ready")
        self._show_draft()

    # ----- accepting --------------------------------------------------------------------------

    def action_accept(self, number: int) -> None:
        """Accept candidate `number` (1-based), as it stands now."""
        self._accept_row(number - 1)

    @on(CandidateList.Accept)
    def _candidate_accepted(self, event: CandidateList.Accept) -> None:
        self._accept_row(event.row)

    def _accept_row(self, row: int) -> None:
        run = self._line_run
        texts = self.candidate_texts
        if run is None or run.kind == FINISH or not 0 <= row < len(texts):
            self._say(f"there is no candidate {row + 1} to accept")
            return
        if not texts[row].strip():
            self._say(f"candidate {row + 1} has no words yet")
            return
        self._take(texts[row], "chosen", run)

    @on(CandidateList.Edit)
    def _candidate_edited(self, event: CandidateList.Edit) -> None:
        run = self._line_run
        texts = self.candidate_texts
        if run is None or not 0 <= event.row < len(texts):
            return
        self._editing = _Editing(run.id, texts[event.row])
        box = self.query_one("#first-line", Input)
        box.value = texts[event.row]
        box.focus()
        # After the focus has selected the whole line: the caret at its end, to go on typing.
        self.call_after_refresh(box.action_end)

    @on(CandidateList.OptionHighlighted)
    def _candidate_highlighted(self) -> None:
        # The poem shows the highlighted candidate as the line being written.
        if self.line_by_line:
            self._show_draft()

    @on(CandidateList.Regenerate)
    def _candidates_regenerate(self) -> None:
        self.regenerate_lines()

    @on(SteerBox.Submitted)
    def _steer_submitted(self) -> None:
        self.regenerate_lines()

    @on(SteerBox.CountChanged)
    def _count_changed(self, event: SteerBox.CountChanged) -> None:
        self.settings.candidates = event.count
        self._save_settings()

    @on(PoemPanel.RewriteLine)
    def _rewrite_line(self, event: PoemPanel.RewriteLine) -> None:
        self._editing = None
        self._start_lines(REWRITE, event.number)
        self.query_one(CandidateList).focus()

    def regenerate_lines(self) -> None:
        """New candidates, with new seeds, for the line the last ones were for."""
        run = self._line_run
        if run is not None and run.kind == REWRITE:
            self._start_lines(REWRITE, run.number)
        else:
            self._start_lines(NEXT)

    def line_submitted(self, text: str) -> None:
        """Enter in the line box: the line typed (or edited) is accepted; an empty box asks
        for new candidates."""
        box = self.query_one("#first-line", Input)
        if not text.strip():
            self._editing = None
            self.regenerate_lines()
            return
        run = self._line_run
        editing, self._editing = self._editing, None
        if editing is not None and run is not None and editing.run_id == run.id:
            how = "chosen" if text.strip() == editing.text.strip() else "edited"
        else:
            how = "typed"
        if self._take(text, how, run):
            box.value = ""

    def _take(self, text: str, how: str, run: _LineRun | None) -> bool:
        """Put `text` in the poem (as line `run.number` when `run` is a rewrite, else as the
        next line), keep the draft, and start the candidates for the next line. A line chosen
        or edited from `run`'s candidates records their count and the emotion they came from."""
        if self._draft_error:
            self._say(self._draft_error)
            return False
        self._stop_line_run()
        draft = self._ensure_draft()
        from_run = run is not None and how in ("chosen", "edited")
        emotion = run.emotion if run is not None and from_run else self.blend_spec
        of = run.count if run is not None and from_run else None
        draft.emotion = self.blend_spec
        try:
            if run is not None and run.kind == REWRITE and run.number is not None:
                draft.replace(run.number, text, how, emotion, of)
            else:
                draft.add(text, how, emotion, of)
        except PoetstudioError as exc:
            self._say(str(exc))
            return False
        except OSError as exc:
            self._say(f"the draft was not kept: {exc.strerror or exc}")
            return False
        self._changed()
        self.query_one(SteerBox).clear_line_words()
        self._start_lines(NEXT)
        return True

    def _add_finished(self, text: str, run: _LineRun) -> None:
        """Add the lines "finish" wrote (as far as it got) to the draft."""
        from studio.core.cowrite.poemtext import poem_lines

        draft = self._ensure_draft()
        lines = poem_lines(text)
        try:
            for line in lines:
                draft.add(line, "finish", run.emotion)
        except (PoetstudioError, OSError) as exc:
            self._say(f"the draft was not kept: {exc}")
        if lines:
            self._changed()
        self._finish_text = ""
        self._show_draft()

    def _changed(self) -> None:
        self._draft_saved = False
        self._confirm_new = False

    # ----- undo, finish, new poem, stop -------------------------------------------------------

    def action_take_back(self) -> None:
        """Take back the last line of the poem (with nothing to take back: a notice)."""
        draft = self._ensure_draft()
        self._stop_line_run()
        try:
            line = draft.undo()
        except OSError as exc:
            self._say(f"the draft was not kept: {exc.strerror or exc}")
            return
        if line is None:
            self._say("nothing to take back: the poem has no line yet")
            return
        self._changed()
        self._start_lines(NEXT)

    def action_finish(self) -> None:
        """Write the rest of the poem at once, as whole poems are written."""
        self._editing = None
        self._start_lines(FINISH)

    def action_new_draft(self) -> None:
        """Start a new poem (an unsaved draft asks for a second ctrl+n first; a damaged draft
        file is left for the writer to look at)."""
        if self._draft_error:
            self._say(self._draft_error)
            return
        draft = self._ensure_draft()
        if any(draft.texts) and not self._draft_saved and not self._confirm_new:
            self._confirm_new = True
            self._say("this draft is not saved: ctrl+s saves it, ctrl+n again drops it")
            return
        self._stop_line_run()
        draft.discard()
        self._draft = Draft.start(self.home, self.blend_spec)
        self._draft_saved = self._confirm_new = False
        self._line_notice = ""
        self.query_one(CandidateList).reset()
        self._line_run = None
        self._show_draft()

    def stop_lines(self) -> None:
        """Esc: stop the run in flight; its candidates stay as they stand."""
        run = self._line_run
        if run is None or run.done:
            return
        run.cancel.set()
        self.query_one(StatusBar).set(state="stopping")

    def lines_aim_changed(self) -> None:
        """The emotion or blend changed: a run in flight starts again in it."""
        run = self._line_run
        if run is not None and not run.done and run.emotion != self.blend_spec:
            self._start_lines(run.kind, run.number)
        else:
            self._show_draft()

    def _say(self, note: str) -> None:
        """A one-line notice under the draft and in the status bar."""
        self._line_notice = note
        self.query_one(StatusBar).set(note=note)
        if self.line_by_line:
            self._show_draft()

    # ----- keep writing a saved poem ----------------------------------------------------------

    def saved_to_reopen(self, limit: int = 5) -> list[SavedPoem]:
        """The newest poems in the poems file (at most `limit`, newest first), to keep writing."""
        from studio.core.poemfile import format_for, parse_poems

        path = self.home.poems_file
        try:
            text, _ = read_tail(path)
        except OSError:
            return []
        return parse_poems(text, format_for(path))[::-1][:limit]

    def keep_writing(self, poem: SavedPoem) -> None:
        """Open a saved poem line by line, to add lines or rewrite some: its lines keep the
        provenance the record gives them (a whole poem's: the first line typed, the rest by
        "finish")."""
        if self._draft_error:
            self._say(self._draft_error)
            return
        draft = self._ensure_draft()
        if any(draft.texts) and not self._draft_saved:
            self._say("this draft is not saved: ctrl+s saves it, ctrl+n drops it; then open again")
            if not self.line_by_line:
                self.action_line_by_line(True)
            return
        self._stop_line_run()
        self._line_run = None
        self._draft = Draft(draft_path(self.home), poem.emotion, saved_lines(poem))
        try:
            self._draft.save()
        except OSError as exc:
            self._say(f"the draft was not kept: {exc.strerror or exc}")
        self._draft_saved = True  # as saved, until a line changes
        self._confirm_new = False
        if self.line_by_line:
            self.query_one(CandidateList).reset()
            self._show_draft()
        else:
            self.action_line_by_line(True)
        self._say(f"keep writing {poem.title!r}: Enter for candidates, or pick a line to rewrite")

    # ----- saving -----------------------------------------------------------------------------

    def save_draft(self) -> None:
        """Append the co-written poem, with each line's provenance, to the poems file."""
        draft = self._ensure_draft()
        if not any(draft.texts):
            self.notify("Nothing to save yet: write a line first.", severity="warning")
            return
        if self._draft_saved:
            self._save_note(f"already saved to {self.home.poems_file}")
            return
        self._draft_saved = True
        self._save_draft(draft, self._line_stats, self._params(None), self.home.poems_file)

    @work(thread=True, exit_on_error=False, group="save")
    def _save_draft(
        self, draft: Draft, stats: GenerationStats | None, params: SamplingParams, path: Path
    ) -> None:
        from studio.core.poemfile import append_poem
        from studio.core.poemstats import runtime_label

        sampling = {k: v for k, v in params.to_dict().items() if k != "seed"}
        try:
            entry = draft.saved_poem(
                model=(stats.model or "") if stats else "",
                sampling=sampling,
                seed=None,  # each line has its own
                strength=stats.strength if stats else None,
                runtime=runtime_label(stats) if stats else "",
            )
            append_poem(path, entry)
        except PoetstudioError as exc:
            self.call_from_thread(self._draft_save_failed, str(exc))
            return
        self.call_from_thread(self._draft_saved_to, draft, path)

    def _draft_save_failed(self, reason: str) -> None:
        self._draft_saved = False
        self._say(f"not saved: {reason}")
        self.notify(reason, title="Save failed", severity="error", timeout=10, markup=False)

    def _draft_saved_to(self, draft: Draft, path: Path) -> None:
        if draft is self._draft and self._draft_saved:
            draft.discard()  # saved: nothing left to offer back (a new line keeps it again)
        self.query_one(StatusBar).set(note=f"saved to {path}")
        self.notify(f"Saved to {path}", title="Poem saved", markup=False)

    # ----- keys -------------------------------------------------------------------------------

    def option_digit(self, event: events.Key) -> events.Key:
        """Line by line with candidates shown, the character a terminal's alt+digit arrives as
        is that alt+digit (to type the character itself, paste it)."""
        number = OPTION_DIGITS.get(event.character or "")
        if number is None or not self.line_by_line or number > len(self.candidate_texts):
            return event
        key = events.Key(f"alt+{number}", None)
        key.time = event.time
        return key


def saved_lines(poem: SavedPoem) -> list[DraftLine]:
    """A saved poem's lines as a draft holds them: with the provenance its record keeps, else
    (a whole poem) the first line typed and the rest written by "finish"."""
    from studio.core.cowrite.poemtext import poem_lines

    lines = poem_lines(poem.text)
    written = [line for line in lines if line]
    known = poem.provenance if len(poem.provenance) == len(written) else None
    first = poem_lines(poem.first_line)
    drafted: list[DraftLine] = []
    for line in lines:
        if not line:
            drafted.append(DraftLine("", "finish", poem.emotion))
            continue
        index = sum(1 for kept in drafted if kept.text)
        if known is not None:
            item = known[index]
            emotion = str(item.get("emotion") or poem.emotion)
            drafted.append(DraftLine(line, str(item["how"]), emotion, item.get("of")))
        else:
            typed = index == 0 and first == [line]
            drafted.append(DraftLine(line, "typed" if typed else "finish", poem.emotion))
    return drafted
