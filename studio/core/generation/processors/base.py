"""What a processor is: one step of choosing the next token, with its own small state.

Each step the chain hands the scores (a 1-D float tensor over the vocabulary) to every processor
in order (processors/__init__.py): `rescore` may mask tokens (-inf) or change their scores.
After a token is chosen and its text taken, `observe` sees it; `at_newline` may end the poem at
a line break. `snapshot` and `restore` take a processor back to the start of a line written
again (studio/core/generation/line_tries.py). Should the masks leave no token at all, the chain
runs again with `relaxed` set: a processor whose mask is a preference then leaves it off, so the
poem goes on; a rule (eos before the minimum lines) holds. Preferences with `yields_first` (the
guidance nucleus, the n-gram ban) are relaxed before the others (the form's), so a rhyme outranks
the neutral model's nucleus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from studio.core.generation.state import PoemState


class Processor:
    """A step of the chain; the defaults change nothing, so a processor overrides what it uses."""

    yields_first = False  # a preference relaxed before the others when nothing is left

    def rescore(self, state: PoemState, scores: torch.Tensor, relaxed: bool) -> torch.Tensor:
        """The scores with this processor's mask or rescoring applied (may change `scores`)."""
        return scores

    def warm(self) -> None:
        """Build the tables `rescore` will read, before the poem starts (`Poet.prepare`), where
        building them at the first token would hold it up."""

    def observe(self, state: PoemState, token: int) -> None:
        """See the token chosen (the state already holds it and its text)."""

    def at_newline(self, state: PoemState, closed_line: bool, opens_stanza: bool) -> str | None:
        """A newline was written (closing a line, opening a stanza): a stop reason to end the
        poem before it, or None."""
        return None

    def missed(self, state: PoemState) -> bool:
        """Whether the line just closed breaks this processor's rule (its preference yielded):
        line tries then write it again, as a forced line."""
        return False

    def snapshot(self) -> dict[str, Any]:
        """This processor's state now, for `restore`. Its attributes are rebound, never changed
        in place, unless the processor overrides this pair."""
        return dict(vars(self))

    def restore(self, saved: dict[str, Any]) -> None:
        """Go back to `saved` (caches made since stay: they hold nothing of the poem)."""
        vars(self).update(saved)
