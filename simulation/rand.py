"""Seeded randomness that gives the same sequence on every machine and Python version.

Only ``random.Random.random()`` is guaranteed stable across Python versions for a given seed, so every draw here
is built from it (``randrange``, ``choice``, ``choices`` and ``gauss`` are not used). Identifiers are derived
from the seed by hashing, never from ``uuid4`` or the clock.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class Rand:
    """A seeded stream of draws; ``child(name)`` gives an independent stream for one concern."""

    def __init__(self, seed: int, name: str = "root") -> None:
        self.seed = seed
        self.name = name
        digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
        self._random = random.Random(int.from_bytes(digest[:8], "big"))

    def child(self, name: str) -> Rand:
        return Rand(self.seed, f"{self.name}/{name}")

    def uniform(self) -> float:
        return self._random.random()

    def between(self, low: float, high: float) -> float:
        return low + (high - low) * self._random.random()

    def integer(self, low: int, high: int) -> int:
        """Uniform integer in [low, high]."""
        return low + min(int(self._random.random() * (high - low + 1)), high - low)

    def chance(self, probability: float) -> bool:
        return self._random.random() < probability

    def pick(self, items: Sequence[T]) -> T:
        return items[min(int(self._random.random() * len(items)), len(items) - 1)]

    def weighted(self, items: Sequence[T], cumulative_weights: Sequence[float]) -> T:
        """Pick with weights given as a running total (last element = total)."""
        target = self._random.random() * cumulative_weights[-1]
        low, high = 0, len(cumulative_weights) - 1
        while low < high:
            mid = (low + high) // 2
            if cumulative_weights[mid] <= target:
                low = mid + 1
            else:
                high = mid
        return items[low]

    def exponential(self, mean: float) -> float:
        return -mean * math.log(1.0 - self._random.random())

    def geometric(self, mean: float) -> int:
        """A count >= 1 with the given mean."""
        p = 1.0 / max(mean, 1.0)
        return 1 + int(math.log(1.0 - self._random.random()) / math.log(1.0 - p)) if p < 1 else 1


def stable_id(*parts: object) -> str:
    """A UUID-shaped identifier derived from ``parts`` (same parts, same id, on any machine)."""
    h = hashlib.blake2b("/".join(str(p) for p in parts).encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def cumulative(weights: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out
