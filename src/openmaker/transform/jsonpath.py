"""The JSONPath subset batch transform's ``InputFilter`` and ``OutputFilter`` accept.

SageMaker documents exactly these forms: ``$`` (the whole record), ``.child``, ``*``
(``.*`` or ``[*]``, every member), ``['a','b']`` (names; no nested paths inside the
brackets), ``[i]`` and ``[i,j,k]`` (indices, negative counting from the end: ``-1`` is the
last), and slices ``[a:b]``, ``[:b]``, ``[a:]``. Slices INCLUDE their end index, unlike
Python's: ``$[1:4]`` is the 2nd to the 5th element and ``$[:5]`` the first six.

A step that picks one member (``.a``, ``[2]``, ``['a']``) yields that value; a step that
picks several yields a list (several names on an object: an object of those members, as
``$['id','SageMakerOutput']`` gives in SageMaker's examples). A path that matches nothing
raises :class:`NoMatch`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 63
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_QUOTED = re.compile(r"\s*(?:'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\")\s*")
_INDEX = re.compile(r"\s*(-?\d+)\s*")
_SLICE = re.compile(r"\s*(-?\d+)?\s*:\s*(-?\d+)?\s*")


class JsonPathError(ValueError):
    """The expression is not in the supported subset; the message says where."""


class NoMatch(LookupError):
    """The path selects nothing in this value."""


@dataclass(frozen=True)
class Step:
    kind: str  # "name", "names", "index", "indices", "slice", "wildcard"
    names: tuple[str, ...] = ()
    indices: tuple[int, ...] = ()
    start: int | None = None
    end: int | None = None  # inclusive

    @property
    def single(self) -> bool:
        return self.kind in ("name", "index")


@dataclass(frozen=True)
class JsonPath:
    """A parsed expression; :meth:`select` applies it to a JSON value."""

    text: str
    steps: tuple[Step, ...]

    def select(self, value: Any) -> Any:
        return _apply(self.steps, value)

    @property
    def is_root(self) -> bool:
        return not self.steps


def parse(text: str) -> JsonPath:
    """Parse ``text``; JsonPathError naming the position when it is outside the subset."""
    if len(text) > MAX_LENGTH:
        raise JsonPathError(f"is {len(text)} characters long; at most {MAX_LENGTH} are allowed")
    source = text.strip()
    if not source.startswith("$"):
        raise JsonPathError("must start with '$' (the whole record)")
    steps: list[Step] = []
    position = 1
    while position < len(source):
        char = source[position]
        if char == ".":
            position += 1
            if source.startswith("*", position):
                steps.append(Step("wildcard"))
                position += 1
                continue
            match = _NAME.match(source, position)
            if match is None:
                raise JsonPathError(f"expects a member name or '*' after '.' at position "
                                    f"{position}")
            steps.append(Step("name", names=(match.group(),)))
            position = match.end()
        elif char == "[":
            close = source.find("]", position)
            if close < 0:
                raise JsonPathError(f"has an unclosed '[' at position {position}")
            steps.append(_bracket(source[position + 1:close], position))
            position = close + 1
        else:
            raise JsonPathError(f"has an unexpected {char!r} at position {position}; use "
                                ".name, .*, ['name',...], [i,...], [a:b] or [*]")
    return JsonPath(text, tuple(steps))


def _bracket(inner: str, position: int) -> Step:
    if inner.strip() == "*":
        return Step("wildcard")
    if inner.lstrip().startswith(("'", '"')):
        names = []
        for part in _split(inner):
            match = _QUOTED.fullmatch(part)
            if match is None:
                raise JsonPathError(f"has a bad name list at position {position}: give "
                                    "quoted names, ['a','b'] (no nested paths)")
            names.append(match.group(1) if match.group(1) is not None else match.group(2))
        return Step("name" if len(names) == 1 else "names", names=tuple(names))
    if ":" in inner:
        match = _SLICE.fullmatch(inner)
        if match is None:
            raise JsonPathError(f"has a bad slice at position {position}: use [a:b], [:b] "
                                "or [a:] (the end index is included)")
        start, end = match.groups()
        return Step("slice", start=None if start is None else int(start),
                    end=None if end is None else int(end))
    indices = []
    for part in _split(inner):
        match = _INDEX.fullmatch(part)
        if match is None:
            raise JsonPathError(f"has a bad index list at position {position}: use [i] or "
                                "[i,j,k] with integers")
        indices.append(int(match.group(1)))
    return Step("index" if len(indices) == 1 else "indices", indices=tuple(indices))


def _split(inner: str) -> list[str]:
    """Comma-separated parts, ignoring commas inside quotes."""
    parts, current, quote = [], [], ""
    for char in inner:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _apply(steps: tuple[Step, ...], value: Any) -> Any:
    if not steps:
        return value
    step, rest = steps[0], steps[1:]
    if step.single:
        return _apply(rest, _one(step, value))
    picked = _several(step, value)
    if isinstance(picked, dict):
        result: Any = {}
        for key, member in picked.items():
            try:
                result[key] = _apply(rest, member)
            except NoMatch:
                continue
    else:
        result = []
        for member in picked:
            try:
                result.append(_apply(rest, member))
            except NoMatch:
                continue
    if not result:
        raise NoMatch(step)
    return result


def _one(step: Step, value: Any) -> Any:
    if step.kind == "name":
        if isinstance(value, dict) and step.names[0] in value:
            return value[step.names[0]]
        raise NoMatch(step)
    if isinstance(value, list):
        index = step.indices[0]
        if -len(value) <= index < len(value):
            return value[index]
    raise NoMatch(step)


def _several(step: Step, value: Any) -> dict | list:
    if step.kind == "wildcard":
        if isinstance(value, dict):
            return list(value.values())
        if isinstance(value, list):
            return value
        raise NoMatch(step)
    if step.kind == "names":
        if not isinstance(value, dict):
            raise NoMatch(step)
        return {name: value[name] for name in step.names if name in value}
    if not isinstance(value, list):
        raise NoMatch(step)
    size = len(value)
    if step.kind == "indices":
        return [value[i] for i in step.indices if -size <= i < size]
    start = 0 if step.start is None else step.start
    end = size - 1 if step.end is None else step.end
    start = start + size if start < 0 else start
    end = end + size if end < 0 else end
    return value[max(start, 0):max(end + 1, 0)]
