"""Errors relaysim raises for bad input, and the one way it reads a user's text file.

Public names: ScenarioError, MISSING, did_you_mean, read_text_file, TEXT_LIMIT.

Contract: every problem with user input (a scenario file, a pasted main.cf, a --set override)
raises ScenarioError whose str() is one line naming the key, the value and what is allowed,
optionally with a did-you-mean. The command line prints that line and exits with status 2.
A value is shown as written when it is short printable text, else by repr(), cut to 80
characters: no control character from a hostile input reaches the terminal.
read_text_file(path, key, limit) reads a regular file of at most `limit` bytes as UTF-8 text
without NUL bytes; anything else (missing, a directory, a device such as /dev/zero, a FIFO,
too big, binary, another encoding) is a ScenarioError naming `key` and saying what was wrong.
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

TEXT_LIMIT = 16 * 1024 * 1024  # bytes: a scenario or a main.cf is a few kB
_SHOWN = 80


def _shown(value: object) -> str:
    text = value if isinstance(value, str) and value.isprintable() else repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."


#: ScenarioError's value for a key that must be given and is not: "key: missing; <allowed>"
MISSING = type("Missing", (), {"__repr__": lambda self: "MISSING"})()


class ScenarioError(ValueError):
    """Bad input: `key`, the offending `value`, and `allowed` (what would be accepted)."""

    def __init__(self, key: str, value: object, allowed: str, hint: str = ""):
        self.key, self.value, self.allowed, self.hint = key, value, allowed, hint
        msg = (f"{_shown(key)}: missing; {allowed}" if value is MISSING else
               f"{_shown(key)}: {_shown(value)} is not allowed; {allowed}")
        if hint:
            msg += f" ({hint})"
        super().__init__(" ".join(msg.split()))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """'did you mean X?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def read_text_file(path: str | Path, key: str, limit: int = TEXT_LIMIT) -> str:
    """The UTF-8 text of the regular file `path` (see the module contract)."""
    shown = str(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; checked to be regular below
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ScenarioError(key, shown, "an existing file") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        why = getattr(e, "strerror", None) or str(e)
        raise ScenarioError(key, shown, f"a readable file ({why})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise ScenarioError(key, shown, f"a regular text file ({what})")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise ScenarioError(key, shown, f"a readable file ({e.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ScenarioError(key, shown, f"a text file of at most {limit} bytes")
    if b"\0" in data:
        raise ScenarioError(key, shown, f"a text file (NUL byte at offset {data.index(0)}: "
                            "binary, or UTF-16)")
    try:
        return data.decode("utf-8-sig")  # a UTF-8 byte-order mark is harmless
    except UnicodeDecodeError as e:
        raise ScenarioError(key, shown, f"UTF-8 text (byte {data[e.start]:#04x} at offset "
                            f"{e.start} is not UTF-8)") from None
