"""The `backend` setting made real: which backend runs the models, and what to say about it.

`torch` is transformers with peft. `llama` is llama.cpp (the `fast` extra), for LoRA models
whose base has a gguf, torch running the rest. `auto` is llama on a CPU where the extra is
installed, else torch: with a one-line notice when only the missing extra stands in the way,
never an error. `llama` without the extra is a one-line error saying how to install it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.core.generation.backends import llamacpp
from trainer.common.errors import PoetstudioError

if TYPE_CHECKING:
    from studio.core.generation.backends.base import Backend
    from studio.core.generation.backends.torch_peft import TorchBackend
    from trainer.common.home import DataHome

NOT_INSTALLED = (
    "the fast backend (llama.cpp) is not installed, so torch decodes; " + llamacpp.INSTALL_HINT
)


def make_backend(
    choice: str, home: DataHome, torch_backend: TorchBackend
) -> tuple[Backend, str | None]:
    """The backend `choice` names, built on `torch_backend` (which runs what llama.cpp cannot),
    and a notice for the user, or None."""
    if choice == "torch":
        return torch_backend, None
    if not llamacpp.installed():
        if choice == "llama":
            raise PoetstudioError(
                f"--backend llama needs llama-cpp-python; {llamacpp.INSTALL_HINT}"
            )
        cpu = torch_backend.device == "cpu"
        return torch_backend, NOT_INSTALLED if cpu else None
    if choice == "auto" and torch_backend.device != "cpu":
        return torch_backend, None  # an accelerator: torch runs there, llama.cpp here does not
    return llamacpp.LlamaBackend(home, torch_backend), None
