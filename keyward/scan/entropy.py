"""Shannon entropy of a string, in bits per character."""

from __future__ import annotations

import math
from collections import Counter


def shannon(value: str) -> float:
    n = len(value)
    if n == 0:
        return 0.0
    return -sum((c / n) * math.log2(c / n) for c in Counter(value).values())
