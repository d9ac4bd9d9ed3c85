"""Does a program fit a TPU chip, and the largest batch that does, by the TPU compiler's own word.

The TPU compiler refuses a program that needs more memory than a chip's HBM (RESOURCE_EXHAUSTED: "Ran out of
memory in memory space hbm ..."). So compiling is the check: `try_compile` turns that refusal into a verdict
with the compiler's sentence, and `largest_rows` searches the rows per chip that compile, with a bounded number
of compiles (each a full compile of the program).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

# Compiles `largest_rows` may spend beyond the configured batch's.
SEARCH_COMPILES = 4


class DoesNotFit(Exception):
    """The TPU compiler's refusal of a program for want of memory; `str()` is its sentence."""


def try_compile(compile_fn: Callable[[], object]):
    """compile_fn() -> its result, or DoesNotFit with the compiler's sentence when it ran out of memory."""
    try:
        return compile_fn()
    except Exception as e:  # XlaRuntimeError / JaxRuntimeError: the compiler's error, by its status
        text = str(e)
        if "RESOURCE_EXHAUSTED" not in text:
            raise
        raise DoesNotFit(compiler_sentence(text)) from None


def compiler_sentence(text: str) -> str:
    """The compiler's out-of-memory message, first sentence(s) only (it goes on with a buffer listing)."""
    text = text[text.index("RESOURCE_EXHAUSTED"):]
    text = re.sub(r"^RESOURCE_EXHAUSTED:\s*", "", text)
    first = text.strip().split("\n")[0].strip()
    return first[:400]


@dataclasses.dataclass(frozen=True)
class Verdict:
    fits: bool
    message: str  # the compiler's sentence when it does not fit; "" when it fits

    def line(self, what: str) -> str:
        if self.fits:
            return f"verdict     fits: the TPU compiler placed {what} in each chip's HBM"
        return f"verdict     does not fit: the TPU compiler says: {self.message}"


@dataclasses.dataclass(frozen=True)
class Largest:
    rows: int  # the most rows per chip that compiled (0: not even one)
    exact: bool  # rows + 1 was refused by the compiler
    tried: tuple[tuple[int, bool], ...]  # (rows per chip, fitted) in the order compiled

    def words(self, ways: int, unit: str) -> str:
        if self.rows == 0:
            return f"none: not even one row per chip compiles ({self._tried()})"
        bound = "" if self.exact else "at least "
        return f"{bound}{self.rows * ways} {unit} ({self.rows} per chip; {self._tried()})"

    def _tried(self) -> str:
        return "compiled at " + ", ".join(f"{n} {'fits' if ok else 'does not'}" for n, ok in self.tried)


def largest_rows(peak_at: Callable[[int], int | None], rows: int, peak: int | None, hbm: int,
                 compiles: int = SEARCH_COMPILES) -> Largest:
    """The most rows per chip whose program compiles, given the configured `rows` and its `peak` (None: it did
    not fit). `peak_at(n)` compiles at n rows per chip: its peak bytes, or None when the compiler refuses.
    Beyond a fitting size the next guess is the straight line through the measured peaks up to `hbm`
    (doubling while there is one point only; at least 1/16 more), below a refused one the midpoint; `exact`
    when the result + 1 was refused."""
    points = {rows: peak} if peak is not None else {}
    lo, hi = (rows, None) if peak is not None else (0, rows)
    tried = []
    for _ in range(compiles):
        if hi is not None and hi - lo <= 1:
            break
        if hi is None:
            n = _extrapolate(points, hbm) if len(points) >= 2 else 2 * lo
            n = max(n, lo + max(1, lo // 16))  # past a fitting guess, a step up to bound it
        else:
            n = (lo + hi) // 2
        p = peak_at(n)
        tried.append((n, p is not None))
        if p is None:
            hi = n
        else:
            lo, points[n] = n, p
    return Largest(lo, hi is not None and hi - lo <= 1, tuple(tried))


def _extrapolate(points: dict[int, int], hbm: int) -> int:
    (a, pa), (b, pb) = sorted(points.items())[-2:]
    per_row = (pb - pa) / (b - a)
    return int((hbm - pb) // per_row) + b if per_row > 0 else 2 * b


def report_lines(verdict: Verdict, largest: Largest | None, hbm: int, *, what: str, ways: int, unit: str) -> list[str]:
    """The verdict and the largest batch, as the dry runs print them."""
    gib = hbm / (1 << 30)
    lines = [verdict.line(f"{what} (HBM {gib:.2f} GiB per chip)")]
    if largest is not None:
        lines.append(f"largest     batch that compiles: {largest.words(ways, unit)}")
    return lines
