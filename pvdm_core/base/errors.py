"""Errors the CLI turns into one clear message and an exit code (no traceback)."""


class PvdmError(Exception):
    """A failure that is not the user's fault to fix by changing the command (exit 1)."""

    exit_code = 1


class BadInputError(PvdmError):
    """Bad usage or bad input: unknown key, missing file, corrupt video, wrong shape (exit 2)."""

    exit_code = 2


class MissingWeightsError(BadInputError):
    """A pretrained weights file is needed and was not found (exit 2)."""


class ClipTooShortError(BadInputError):
    """A video holds fewer frames than the clip asked for (exit 2).

    Typed so that callers who skip and count such videos (eval-fvd, datasets) can tell them
    from other decoding failures without reading the message.
    """

    def __init__(self, message: str, have: int, need: int):
        super().__init__(message)
        self.have, self.need = have, need
