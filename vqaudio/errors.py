"""The one exception family vqaudio raises for problems a user can fix (bad files, wrong models).

The CLI catches :class:`VQAudioError` and prints its message as a single line; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class VQAudioError(Exception):
    """Base class: a problem with the user's input, files or models, described in one line."""


class AudioError(VQAudioError):
    """An audio file cannot be read or written, or holds unusable samples (NaN/Inf, empty)."""


class TokenFileError(VQAudioError):
    """A token file is malformed, truncated, from a future format version, or from another model."""


class ModelError(VQAudioError):
    """A model cannot be found, its files are incomplete, or its checksum does not match."""


class ConfigError(VQAudioError):
    """A configuration value is out of range or inconsistent with the others."""


class UnknownKeyError(ConfigError):
    """A configuration names a setting this version does not have: a typo, or a file written by a newer one."""


class VQAudioWarning(UserWarning):
    """Something about the input the user should know that does not stop the work, e.g. a truncated file.

    Raised with :func:`warnings.warn`: the library carries on and Python's warning filters decide what happens
    (``warnings.simplefilter("error", VQAudioWarning)`` turns it into an exception). The CLI prints it as one
    ``warning:`` line on stderr, and its ``--strict`` option makes it an error.
    """
