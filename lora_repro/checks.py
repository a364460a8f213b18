"""How every layer reports a bad config: all problems at once, each naming the key, the value and what
is allowed (so one attempt fixes everything, and a sweep can list every job's problems before it runs)."""
from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A bad run config: one line per problem, each naming the key, the value and what is allowed."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class Problems(list):
    """Every problem of a config, collected, so one attempt reports all of them."""

    def check(self, ok: bool, key: str, value: Any, allowed: str) -> bool:
        if not ok:
            self.append(f"{key}={value!r} is invalid; allowed: {allowed}")
        return ok

    def raise_any(self) -> None:
        if self:
            raise ConfigError(list(self))


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_real(value) -> bool:
    """A finite number (not a bool): inf and nan pass `> 0` checks and then poison a run."""
    import math
    return is_number(value) and math.isfinite(value)


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
