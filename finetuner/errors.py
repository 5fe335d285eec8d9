"""The engine's error for a run that cannot go on, apart from the loop so that every module can raise it."""


class TrainingError(RuntimeError):
    """Training could not go on (NaN loss, label set changed under a resume...), with a reason a user can read."""
