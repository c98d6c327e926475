"""Exceptions that carry a message meant for the person running repcompare.

The command line turns an :class:`InputError` into one printed sentence and
exit code 2 (bad usage or bad input), and a :class:`RunError` into exit code 1
(a failure while running). Both print no traceback unless ``--debug`` is given.
"""


class RepcompareError(Exception):
    """Base class: the message is one sentence naming what is wrong and what to do."""

    exit_code = 1


class InputError(RepcompareError, ValueError):
    """The user's input (arguments, files, data, activations) cannot be used."""

    exit_code = 2


class RunError(RepcompareError, RuntimeError):
    """Something failed while running on valid input."""

    exit_code = 1
