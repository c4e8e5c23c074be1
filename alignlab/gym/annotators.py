"""Simulated annotators: rank or compare responses from the gold reward, with a configurable agreement.

`agreement` is the probability that the annotator's verdict on a pair with different gold rewards matches the gold
(Ziegler et al. 2019 saw ~60% between researchers and labellers). It is exact: with probability q = 2·agreement − 1
the annotator follows the gold order, otherwise it answers at random (which agrees half the time).
The same interface (`compare`, `rank`) is served by people through the annotation platform.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from alignlab.gym.judge import judge
from alignlab.gym.world import Request, World


@dataclass
class SimulatedAnnotator:
    world: World
    annotator_id: str
    agreement: float = 0.9
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self):
        if not 0.5 <= self.agreement <= 1.0:
            raise ValueError(f"annotator agreement must be in [0.5, 1] (0.5 = random), got {self.agreement}")
        self._rng = random.Random(f"{self.annotator_id}/{self.seed}")

    def _follows_gold(self) -> bool:
        return self._rng.random() < 2 * self.agreement - 1

    def compare(self, request: Request, a: str, b: str) -> int:
        """0 if `a` is preferred, 1 if `b` is. Gold ties are broken at random."""
        ra, rb = judge(self.world, request, a).reward, judge(self.world, request, b).reward
        if ra != rb and self._follows_gold():
            return 0 if ra > rb else 1
        return self._rng.randint(0, 1)

    def equally_good(self, request: Request, a: str, b: str) -> bool:
        """A person's "equally good" answer: the two responses have the same gold reward."""
        return judge(self.world, request, a).reward == judge(self.world, request, b).reward

    def rank(self, request: Request, responses: list[str]) -> list[int]:
        """Rank of each response, 0 = best (Ziegler's best-of-4 reads the response with rank 0)."""
        rewards = [judge(self.world, request, r).reward for r in responses]
        keys = [self._rng.random() for _ in responses]           # random tie-break / random order
        if self._follows_gold():
            order = sorted(range(len(responses)), key=lambda i: (-rewards[i], keys[i]))
        else:
            order = sorted(range(len(responses)), key=lambda i: keys[i])
        ranks = [0] * len(responses)
        for position, i in enumerate(order):
            ranks[i] = position
        return ranks

