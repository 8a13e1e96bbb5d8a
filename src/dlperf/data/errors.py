"""The one error that every dataset reader raises for data on disk that is not in the expected format."""
from __future__ import annotations


class DatasetFormatError(ValueError):
    """A dataset file, class folder or split is missing or malformed.

    The message names the offending file, class or split and says what is wrong with it, so that a user
    can fix a broken download or a hand-made dataset without reading the reader's code.
    """
