"""Errors the project raises for bad user input (config values, files)."""


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


def check_positive(what: str, value) -> None:
    """Raise :class:`ConfigError` unless ``value > 0``."""
    if not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{what}={value!r} must be a positive number")
