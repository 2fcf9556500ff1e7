"""Command-line values checked where they enter: a bad one is a usage error (64) naming the
range, never a NaN, an infinity or an empty string that surfaces later as a traceback or as
"not given"."""

from __future__ import annotations

import argparse
import math
import re
from typing import Any, Callable


def number(low: float, high: float, whole: bool = False) -> Callable[[str], Any]:
    """Bounds at the edge: nan, inf, 1e400 and negatives fail here, with the range, not deep in a run."""
    def parse(given: str) -> float:
        shape = r"\d+" if whole else r"\d+(\.\d*)?|\.\d+"
        value = (int if whole else float)(given) if re.fullmatch(shape, given.strip()) else math.nan
        if not low <= value <= high:  # NaN fails this too
            kind = "a whole number" if whole else "a number"
            raise argparse.ArgumentTypeError(f"{given!r} is not {kind} from {low:.10g} to {high:.10g}")
        return value
    return parse


def text(value: str) -> str:
    """An empty value would silently mean "not given" (--config "" -> the built-in defaults)."""
    if not value.strip() or "\x00" in value:
        raise argparse.ArgumentTypeError("must not be empty")
    return value
