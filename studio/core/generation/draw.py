"""The last step of choosing a token: temperature, top-k and top-p, then one seeded draw."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from studio.core.generation.settings import SamplingParams


class Draw:
    """Draws a token from final scores with the poem's own generator (its seed)."""

    def __init__(self, params: SamplingParams, seed: int, device: torch.device) -> None:
        import torch

        self.temperature = params.temperature
        self.top_k = params.top_k
        self.top_p = params.top_p
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)

    def __call__(self, scores: torch.Tensor) -> int:
        """The token drawn from `scores` (1-D; -inf where masked); 0 temperature is greedy."""
        import torch

        if self.temperature == 0:
            return int(torch.argmax(scores))
        scores = scores / self.temperature
        if self.top_k and self.top_k < scores.shape[0]:
            values, indices = torch.topk(scores, self.top_k)
        else:
            values, indices = torch.sort(scores, descending=True)
        probs = torch.softmax(values, dim=-1)
        if self.top_p < 1.0:
            # Keep the smallest head of the sorted distribution whose mass reaches top_p.
            cumulative = torch.cumsum(probs, dim=-1)
            probs = probs.masked_fill(cumulative - probs >= self.top_p, 0.0)
        choice = torch.multinomial(probs, 1, generator=self.generator)
        return int(indices[choice])
