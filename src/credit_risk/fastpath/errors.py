"""The one error every stage of the compiler raises when it cannot (or must not) serve."""


class FastPathUnavailable(RuntimeError):
    """The fitted pipeline cannot be compiled, or the compiled path disagrees with it."""
