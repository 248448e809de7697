"""Errors relaysim raises for bad input.

Public names: ScenarioError, did_you_mean.

Contract: every problem with user input (a scenario file, a pasted main.cf, a --set override)
raises ScenarioError whose str() is one line naming the key, the value and what is allowed,
optionally with a did-you-mean. The command line prints that line and exits with status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ScenarioError(ValueError):
    """Bad input: `key`, the offending `value`, and `allowed` (what would be accepted)."""

    def __init__(self, key: str, value: object, allowed: str, hint: str = ""):
        self.key, self.value, self.allowed, self.hint = key, value, allowed, hint
        shown = value if isinstance(value, str) else repr(value)
        msg = f"{key}: {shown!s} is not allowed; {allowed}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg.replace("\n", " "))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """'did you mean X?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""
