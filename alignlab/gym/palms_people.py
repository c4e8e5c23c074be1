"""The gym's simulated PALMS people (alignlab.palms.People): editors who rewrite a draft as an answer that follows
the topic's written position (one of the position's reviewed answers in positions.yaml), and annotators who judge a
blind pair as the gym's simulated annotators do (the gold judge's reward, followed with the given agreement)."""

from __future__ import annotations

import random

from alignlab.gym.annotators import SimulatedAnnotator
from alignlab.gym.interfaces import DEFAULT_WORLD
from alignlab.gym.world import Request, build_world


class GymPeople:
    def __init__(self, seed: int = 0, agreement: float = 0.9, world_seed: int = DEFAULT_WORLD, annotators: int = 1):
        self.world = build_world(world_seed)
        self.rng = random.Random(f"palms-editors-{seed}")
        self.annotators = [SimulatedAnnotator(self.world, f"palms-sim-{i:02d}", agreement, seed)
                           for i in range(annotators)]
        self.name = f"gym simulated people (world {world_seed}, agreement {agreement}, {annotators} annotator(s))"

    def edit(self, requests: list[dict]) -> list[str]:
        """A topic of the gym's world gets one of its position's reviewed answers; any other keeps its draft."""
        out = []
        for r in requests:
            position = self.world.positions.get(r.get("topic"))
            out.append(self.rng.choice(position["aligned"]) if position else r["draft"])
        return out

    def _request(self, r: dict) -> Request:
        topic = r["topic"]
        return Request(r["key"], "sensitive", "en", [{"role": "user", "content": r["prompt"]}],
                       {"topic": topic, "item": f"{topic}/{r['prompt']}"}, "eval")

    def judge(self, requests: list[dict]) -> list[list[float]]:
        out = []
        for r in requests:
            request, (a, _), (b, _) = self._request(r), r["answers"][0], r["answers"][1]
            labels = []
            for annotator in self.annotators:
                if annotator.equally_good(request, a, b):
                    labels.append(0.5)
                else:
                    labels.append(1.0 if annotator.compare(request, a, b) == 0 else 0.0)
            out.append(labels)
        return out
