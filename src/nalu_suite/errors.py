"""Errors the project raises for bad user input (config values, files), and the shared value checks.

Every check raises :class:`ConfigError` with a message that names the key and the bad value.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is wrong. The message names the value and the valid choices."""


def check_choice(what: str, value, choices) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"{what}={value!r} is not valid; choose one of: {', '.join(map(str, choices))}")


def check_range(what: str, low: float, high: float) -> None:
    """Raise :class:`ConfigError` unless ``low < high``."""
    if not low < high:
        raise ConfigError(f"{what}=[{low}, {high}] is empty; the lower bound must be below the upper bound")


def check_positive(what: str, value) -> float:
    """Return ``float(value)``; raise :class:`ConfigError` unless it is a number (not a bool) ``> 0``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{what}={value!r} must be a positive number")
    return float(value)


def check_positive_int(what: str, value) -> int:
    """Return ``value``; raise :class:`ConfigError` unless it is an integer (not a bool) ``>= 1``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what}={value!r} must be a positive integer")
    return value


def check_int(what: str, value, low: int, high: int | None = None) -> int:
    """Return ``value``; raise :class:`ConfigError` unless it is an integer (not a bool) in ``[low, high]``
    (``high=None``: no upper bound)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{what}={value!r} must be an integer {bound}")
    return value


def check_number(what: str, value, low: float | None = None, *, above: bool = False) -> float:
    """Return ``float(value)``; raise :class:`ConfigError` unless it is a finite number (not a bool or a
    string) ``>= low`` (``> low`` with ``above``; ``low=None``: no bound)."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        bound = "" if low is None else f" {'>' if above else '>='} {low:g}"
        raise ConfigError(f"{what}={value!r} must be a finite number{bound}")
    if low is not None and (value <= low if above else value < low):
        raise ConfigError(f"{what}={value!r} must be {'>' if above else '>='} {low:g}")
    return float(value)


def clip_text(text: str, limit: int = 80) -> str:
    """``text`` with its whitespace runs (tabs, newlines) made single spaces, cut to ``limit`` characters
    with an ellipsis: a user's value echoed inside a one-line message or a tab-separated line."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
