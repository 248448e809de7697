"""Errors relaysim raises for bad input, and the one way it reads a user's text file.

Public names: ScenarioError, MISSING, did_you_mean, read_text_file, TEXT_LIMIT.

Contract: every problem with user input (a scenario file, a pasted main.cf, a --set override)
raises ScenarioError whose str() is one line naming the key, the value, what is wrong in plain
words when "expected ..." alone would not say it ("no such file", "unknown key"), and what is
allowed, optionally with a did-you-mean:
    <key> = <value>: <problem> [(did you mean 'x'?)]; expected <allowed>
    <key> = <value>: expected <allowed> [(a hint)]
    <key>: missing; <allowed>
The command line prints that line and exits with status 2.
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
    """Bad input: `key`, the offending `value`, `allowed` (what would be accepted, read after
    "expected"), an optional `hint` (a did-you-mean, or a detail) and `problem` (what is wrong,
    in plain words, when the value is not merely outside `allowed`)."""

    def __init__(self, key: str, value: object, allowed: str, hint: str = "",
                 problem: str = ""):
        self.key, self.value, self.allowed, self.hint = key, value, allowed, hint
        self.problem = problem
        if value is MISSING:
            msg = f"{_shown(key)}: missing; {allowed}"
        else:
            why = f" ({hint})" if hint else ""
            msg = (f"{_shown(key)} = {_shown(value)}: {problem}{why}; expected {allowed}"
                   if problem else f"{_shown(key)} = {_shown(value)}: expected {allowed}{why}")
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
        raise ScenarioError(key, shown, "an existing file", problem="no such file") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        why = getattr(e, "strerror", None) or str(e)
        raise ScenarioError(key, shown, "a readable file",
                            problem=f"cannot be read ({why.lower()})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
            raise ScenarioError(key, shown, "a regular text file", problem=what)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise ScenarioError(key, shown, "a readable file",
                            problem=f"cannot be read ({(e.strerror or str(e)).lower()})") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ScenarioError(key, shown, f"a text file of at most {limit} bytes",
                            problem="too big")
    if b"\0" in data:
        raise ScenarioError(key, shown, "a UTF-8 text file", problem=f"binary or UTF-16 "
                            f"(a NUL byte at offset {data.index(0)})")
    try:
        return data.decode("utf-8-sig")  # a UTF-8 byte-order mark is harmless
    except UnicodeDecodeError as e:
        raise ScenarioError(key, shown, "UTF-8 text", problem=f"not UTF-8 (byte "
                            f"{data[e.start]:#04x} at offset {e.start})") from None
