"""Exceptions that carry a message meant for the person running repcompare.

The command line turns an :class:`InputError` into one printed sentence and
exit code 2 (bad usage or bad input), and a :class:`RunError` into exit code 1
(a failure while running). Both print no traceback unless ``--debug`` is given.
"""

WORKER_TRACEBACK = "Original Traceback"


class RepcompareError(Exception):
    """Base class: the message is one sentence naming what is wrong and what to do.

    A data-loader worker's error comes back to the main process re-raised with
    the worker's whole traceback as its message; that message is cut back to
    the original sentence, so the user still reads one sentence.
    """

    exit_code = 1

    def __init__(self, message: str = ""):
        if WORKER_TRACEBACK in message:
            message = message.strip().splitlines()[-1].split(": ", 1)[-1]
        super().__init__(message)


class RepcompareWarning(UserWarning):
    """Something the user should know that does not stop the run (one sentence)."""


class InputError(RepcompareError, ValueError):
    """The user's input (arguments, files, data, activations) cannot be used."""

    exit_code = 2


class RunError(RepcompareError, RuntimeError):
    """Something failed while running on valid input."""

    exit_code = 1
