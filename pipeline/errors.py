"""The project's error base class.

An expected failure (invalid configuration or input, a service that does not answer, a run that failed) is a
:class:`ShoplakeError`, and the command line reports it in one line. Any other exception is a bug and keeps its
traceback.
"""


class ShoplakeError(Exception):
    """An expected failure, reported to the user in one line."""
