"""The error a run raises when its loss stops being finite."""


class DivergenceError(RuntimeError):
    """Training produced a NaN or infinite loss; the message names the step, the unit and the last good checkpoint."""
