"""The error a run raises when its loss stops being finite."""


class DivergenceError(RuntimeError):
    """Training produced a NaN or infinite loss; the message names the step, unit and last good checkpoint."""
