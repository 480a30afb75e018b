"""Check request parameters against botocore shapes, and render results as wire JSON.

:func:`parse_params` validates a request the way AWS does and returns its values in
Python types (timestamps as UTC ``datetime``, blobs as ``bytes``), keyed by member name.
Every problem is collected, then one :class:`~openmaker.core.errors.ValidationException`
lists them all in AWS's format::

    2 validation errors detected: Value null at 'roleArn' failed to satisfy constraint:
    Member must not be null; Value '0' at 'resourceConfig.instanceCount' failed to satisfy
    constraint: Member must have value greater than or equal to 1

Conventions:

* Member paths are the lowerCamelCase member names joined by ``.``. A list element is
  ``<list>.<1-based index>.member`` (``tags.1.member.key``); a map value is
  ``<map>.<key>.member`` (``environment.MY_VAR.member``) and a map key is
  ``<map>.<key>.key``. Values and keys are cut to 256 characters in messages.
* Errors are ordered by position in the shape (model order for members, index order
  for list elements), containers before their contents.
* Members the shape does not know are ignored, so newer clients that send newer
  members still work; JSON ``null`` counts as absent.
* Strings in JSON bodies must have the member's type. Values a REST layer took from a
  header, query string or URI, and every value of the ``query``/``ec2``/``rest-xml``
  protocols, arrive as text and are converted (``"5"`` → 5, ``"true"`` → True).
* Timestamps may be epoch seconds or ISO-8601/RFC-822 text; blobs are base64 text (or
  raw bytes, and the raw text of a REST payload member).
* ``pattern`` is Java regex syntax; it is translated to the ``regex`` module and must
  match the whole value, like Java's ``Matcher.matches``. A pattern that cannot be
  translated is skipped (logged once at debug level).

:func:`serialize_output` turns a handler's result into the JSON wire form of an output
shape. Keys the shape does not name are dropped, so handlers may return stored records
with extra fields; ``None`` members are dropped too.

Per-shape work (member tables, compiled patterns) is done once and cached by shape name
per service model, and only the members present in a value are walked.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from openmaker.core.errors import SerializationException, ValidationException

if TYPE_CHECKING:
    from botocore.model import Shape, StructureShape

log = logging.getLogger(__name__)

_VALUE_CAP = 256
_MISSING = object()
_TEXT_PROTOCOLS = frozenset({"query", "ec2", "rest-xml"})
_TEXT_LOCATIONS = frozenset({"header", "headers", "querystring", "uri"})
_INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


# --- plans: what is checked for one shape, computed once ---------------------------------


class _Plan:
    """The checks and conversions for one shape."""

    __slots__ = (
        "shape", "type_name", "parse", "render", "min", "max", "pattern", "regex", "enum",
        "enum_text", "streaming", "member", "key", "value", "_struct",
    )

    def __init__(self, shape: Shape) -> None:
        metadata = shape.metadata
        self.shape = shape
        self.type_name = shape.type_name
        self.min = metadata.get("min")
        self.max = metadata.get("max")
        self.pattern = metadata.get("pattern")
        self.regex: Any = _UNCOMPILED
        enum = metadata.get("enum")
        self.enum = frozenset(enum) if enum else None
        self.enum_text = f"[{', '.join(enum)}]" if enum else ""
        self.streaming = bool(shape.serialization.get("streaming"))
        self.member: _Plan | None = None
        self.key: _Plan | None = None
        self.value: _Plan | None = None
        self._struct: _Struct | None = None
        self.parse: Callable[..., Any] = _PARSERS.get(self.type_name, _parse_any)
        self.render: Callable[[_Plan, Any], Any] | None = _RENDERERS.get(self.type_name)
        if self.type_name == "structure" and (
            metadata.get("document") or shape.serialization.get("eventstream")
        ):
            self.parse, self.render = _parse_any, None

    def struct(self) -> _Struct:
        """The member table, built on first use (shapes may be recursive)."""
        if self._struct is None:
            self._struct = _Struct(self.shape)
        return self._struct


class _Member:
    __slots__ = ("name", "wire", "segment", "index", "plan", "text", "payload")

    def __init__(self, name: str, wire: str, index: int, plan: _Plan, text: str,
                 payload: bool) -> None:
        self.name = name
        self.wire = wire
        self.segment = name[:1].lower() + name[1:]
        self.index = index
        self.plan = plan
        self.text = text
        self.payload = payload


class _Struct:
    """A structure's members: by request key, the required ones, and by member name."""

    __slots__ = ("by_key", "required", "by_name")

    def __init__(self, shape: StructureShape) -> None:
        payload = shape.serialization.get("payload")
        members = []
        for index, (name, member_shape) in enumerate(shape.members.items()):
            serialization = member_shape.serialization
            location = serialization.get("location")
            # Located members keep their member name: a REST layer assembles them itself.
            wire = name if location else serialization.get("name", name)
            members.append(_Member(
                name, wire, index, _plan_for(member_shape),
                text=location if location in _TEXT_LOCATIONS else "", payload=name == payload,
            ))
        self.by_name = {m.name: m for m in members}
        self.by_key = {**self.by_name, **{m.wire: m for m in members}}
        required = set(shape.required_members)
        self.required = tuple(m for m in members if m.name in required)


def _plan_for(shape: Shape) -> _Plan:
    """The plan of ``shape``, shared by every shape of that name in the same model.

    Plans are stored on botocore's own objects (the shape, and the model's shape
    resolver for the by-name table), so they live exactly as long as the model.
    """
    plan = shape.__dict__.get("_openmaker_plan")
    if plan is not None:
        return plan
    metadata = shape.metadata
    # A member reference may override a shape's traits, so they are part of the key.
    key = (shape.name, shape.type_name, metadata.get("min"), metadata.get("max"),
           metadata.get("pattern"), tuple(metadata.get("enum") or ()),
           bool(shape.serialization.get("streaming")))
    by_name = shape._shape_resolver.__dict__.setdefault("_openmaker_plans", {})
    plan = by_name.get(key)
    if plan is None:
        plan = _Plan(shape)
        by_name[key] = plan  # before the children, so recursive shapes find it
        if plan.type_name == "list":
            plan.member = _plan_for(shape.member)
        elif plan.type_name == "map":
            plan.key = _plan_for(shape.key)
            plan.value = _plan_for(shape.value)
    shape._openmaker_plan = plan
    return plan


# --- request parsing ---------------------------------------------------------------------
# A node is (parent, label, order, kind): kind 0 = member (label is its lowerCamel name),
# 1 = list element (label is the 1-based index), 2 = map key, 3 = map value (label is the
# key). Paths and sort keys are built from nodes only when an error is reported.

_Node = tuple[Any, Any, int, int]
# Where a value came from: False for a JSON body (types must match), True for a protocol
# that sends everything as text, or the location ("header", "querystring", ...).
_Text = str | bool


def parse_params(
    shape: StructureShape | None, value: object, *, protocol: str = "json"
) -> dict:
    """Validate request parameters against input ``shape``; return them in Python types.

    Raises ``SerializationException`` when ``value`` is not an object and
    ``ValidationException`` listing every constraint violation.
    """
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise SerializationException(
            f"Start of {_json_kind(value)} found where not expected: the request body must "
            "be a JSON object of the operation's parameters"
        )
    if shape is None:
        return {}
    errors: list[tuple[_Node, object, str]] = []
    result = _parse_structure(_plan_for(shape), value, None, protocol in _TEXT_PROTOCOLS,
                              errors)
    if errors:
        raise ValidationException(_message(errors))
    return result


def _parse_structure(plan: _Plan, value: Any, node: _Node | None, text: _Text,
                     errors: list) -> Any:
    if type(value) is not dict and not isinstance(value, Mapping):
        errors.append((node, value, "Member must be of type structure"))
        return None
    struct = plan.struct()
    by_key = struct.by_key
    out = {}
    for key, item in value.items():
        member = by_key.get(key)
        if member is None or item is None:
            continue
        child = member.plan
        if member.payload and child.type_name == "blob" and isinstance(item, str):
            item = item.encode()
        out[member.name] = child.parse(child, item, (node, member.segment, member.index, 0),
                                       member.text or text, errors)
    for member in struct.required:
        if value.get(member.wire) is None and value.get(member.name) is None:
            errors.append(((node, member.segment, member.index, 0), _MISSING,
                           "Member must not be null"))
    return out


def _parse_list(plan: _Plan, value: Any, node: _Node, text: _Text,
                errors: list) -> Any:
    if type(value) is not list and not isinstance(value, tuple):
        if not (text and isinstance(value, str)):
            errors.append((node, value, "Member must be of type list"))
            return None
        # botocore joins a header list with commas; other text sources send a lone value.
        value = [part.strip() for part in value.split(",")] if text == "header" else [value]
    _check_size(plan, len(value), value, node, errors)
    member = plan.member
    parse = member.parse
    return [parse(member, item, (node, i + 1, i, 1), text, errors)
            for i, item in enumerate(value)]


def _parse_map(plan: _Plan, value: Any, node: _Node, text: _Text, errors: list) -> Any:
    if type(value) is not dict and not isinstance(value, Mapping):
        errors.append((node, value, "Member must be of type map"))
        return None
    _check_size(plan, len(value), value, node, errors)
    key_plan, value_plan = plan.key, plan.value
    out = {}
    for i, (key, item) in enumerate(value.items()):
        key_plan.parse(key_plan, key, (node, key, 2 * i, 2), text, errors)
        if item is not None:
            out[key] = value_plan.parse(value_plan, item, (node, key, 2 * i + 1, 3), text,
                                        errors)
    return out


def _parse_string(plan: _Plan, value: Any, node: _Node, text: _Text, errors: list) -> Any:
    if not isinstance(value, str):
        errors.append((node, value, "Member must be of type string"))
        return None
    if plan.enum is not None and value not in plan.enum:
        errors.append((node, value, f"Member must satisfy enum value set: {plan.enum_text}"))
    if plan.min is not None or plan.max is not None:
        _check_size(plan, _java_length(value), value, node, errors)
    if plan.pattern is not None:
        compiled = plan.regex
        if compiled is _UNCOMPILED:
            compiled = plan.regex = _compile_pattern(plan.pattern)
        if compiled is not None and not _matches(compiled, value):
            shown = plan.pattern if plan.pattern.startswith(("^", "\\A")) else (
                "^" + plan.pattern)
            errors.append((node, value,
                           f"Member must satisfy regular expression pattern: {shown}"))
    return value


def _java_length(value: str) -> int:
    """The length Java reports: characters beyond the BMP count twice (UTF-16)."""
    if value.isascii():
        return len(value)
    return len(value) + sum(1 for ch in value if ord(ch) > 0xFFFF)


def _parse_boolean(plan: _Plan, value: Any, node: _Node, text: _Text, errors: list) -> Any:
    if type(value) is bool:
        return value
    if text and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    errors.append((node, value, "Member must be of type boolean"))
    return None


def _parse_integer(plan: _Plan, value: Any, node: _Node, text: _Text, errors: list) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif text and isinstance(value, str) and _is_integer_text(value):
        number = int(value)
    else:
        errors.append((node, value, f"Member must be of type {plan.type_name}"))
        return None
    low, high = _INT_RANGES[plan.type_name]
    if number < low:
        errors.append((node, value, f"Member must have value greater than or equal to {low}"))
    elif number > high:
        errors.append((node, value, f"Member must have value less than or equal to {high}"))
    _check_value(plan, number, value, node, errors)
    return number


def _is_integer_text(value: str) -> bool:
    digits = value.strip().removeprefix("-").removeprefix("+")
    return digits.isascii() and digits.isdigit()


def _parse_float(plan: _Plan, value: Any, node: _Node, text: _Text, errors: list) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and value in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[value]
    elif text and isinstance(value, str) and _is_float_text(value):
        number = float(value)
    else:
        errors.append((node, value, f"Member must be of type {plan.type_name}"))
        return None
    if not math.isnan(number):
        _check_value(plan, number, value, node, errors)
    return number


def _is_float_text(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return "_" not in value


def _parse_timestamp(plan: _Plan, value: Any, node: _Node, text: _Text, errors: list) -> Any:
    parsed = _to_datetime(value)
    if parsed is None:
        errors.append((node, value, "Member must be of type timestamp (epoch seconds or an "
                                    "ISO-8601 date-time)"))
    return parsed


_FRACTION_RE = re.compile(r"(\.\d{6})\d+")


def _to_datetime(value: Any) -> datetime | None:
    """Epoch seconds, ISO-8601 or RFC-822 text, or a datetime, as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        stripped = value.strip()
        if _is_float_text(stripped):
            return _to_datetime(float(stripped))
        try:
            return _to_datetime(datetime.fromisoformat(_FRACTION_RE.sub(r"\1", stripped)))
        except ValueError:
            pass
        try:
            return _to_datetime(parsedate_to_datetime(stripped))
        except (TypeError, ValueError, IndexError):
            return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (ValueError, OverflowError, OSError):
            return None
    return None


def _parse_blob(plan: _Plan, value: Any, node: _Node, text: _Text, errors: list) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    elif isinstance(value, str):
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            errors.append((node, value, "Member must be of type blob (base64-encoded text)"))
            return None
    elif plan.streaming and hasattr(value, "read"):
        return value
    else:
        errors.append((node, value, "Member must be of type blob (base64-encoded text)"))
        return None
    if plan.min is not None or plan.max is not None:
        _check_size(plan, len(data), data, node, errors)
    return data


def _parse_any(plan: _Plan, value: Any, node: _Node, text: _Text, errors: list) -> Any:
    return value


_PARSERS: dict[str, Callable[..., Any]] = {
    "structure": _parse_structure,
    "list": _parse_list,
    "map": _parse_map,
    "string": _parse_string,
    "boolean": _parse_boolean,
    "integer": _parse_integer,
    "long": _parse_integer,
    "float": _parse_float,
    "double": _parse_float,
    "timestamp": _parse_timestamp,
    "blob": _parse_blob,
}


def _check_size(plan: _Plan, size: int, value: Any, node: _Node, errors: list) -> None:
    if plan.min is not None and size < plan.min:
        errors.append((node, value,
                       f"Member must have length greater than or equal to {plan.min}"))
    if plan.max is not None and size > plan.max:
        errors.append((node, value, f"Member must have length less than or equal to {plan.max}"))


def _check_value(plan: _Plan, number: float, value: Any, node: _Node, errors: list) -> None:
    if plan.min is not None and number < plan.min:
        errors.append((node, value,
                       f"Member must have value greater than or equal to {plan.min}"))
    if plan.max is not None and number > plan.max:
        errors.append((node, value, f"Member must have value less than or equal to {plan.max}"))


# --- messages ----------------------------------------------------------------------------


def _message(errors: list[tuple[_Node, object, str]]) -> str:
    ordered = sorted(errors, key=lambda error: _order(error[0]))
    parts = []
    for node, value, constraint in ordered:
        shown = "null" if value is _MISSING else f"'{_display(value)}'"
        parts.append(f"Value {shown} at '{_path(node)}' failed to satisfy constraint: "
                     f"{constraint}")
    count = len(parts)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(parts)


def _order(node: _Node | None) -> tuple[int, ...]:
    orders = []
    while node is not None:
        orders.append(node[2])
        node = node[0]
    return tuple(reversed(orders))


def _path(node: _Node | None) -> str:
    segments = []
    while node is not None:
        _, label, _, kind = node
        if kind == 0:
            segments.append(label)
        elif kind == 1:
            segments.append(f"{label}.member")
        else:
            segments.append(f"{_clip(str(label))}.{'key' if kind == 2 else 'member'}")
        node = node[0]
    return ".".join(reversed(segments))


def _clip(text: str) -> str:
    return text if len(text) <= _VALUE_CAP else text[:_VALUE_CAP] + "..."


def _display(value: object) -> str:
    """The value as AWS (Java) prints it, cut to 256 characters."""
    return _clip(_java_text(value, _VALUE_CAP + 1))


def _java_text(value: object, limit: int) -> str:
    if isinstance(value, str):
        return value[:limit]
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes | bytearray | memoryview):
        size = len(value)
        return f"java.nio.HeapByteBuffer[pos=0 lim={size} cap={size}]"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple | Mapping):
        pairs = value.items() if isinstance(value, Mapping) else None
        items = pairs if pairs is not None else value
        parts: list[str] = []
        used = 2
        for item in items:
            if used > limit:
                break
            if pairs is not None:
                key, item_value = item
                piece = f"{key}={_java_text(item_value, limit - used)}"
            else:
                piece = _java_text(item, limit - used)
            parts.append(piece)
            used += len(piece) + 2
        open_, close = ("{", "}") if pairs is not None else ("[", "]")
        return open_ + ", ".join(parts) + close
    return str(value)[:limit]


def _json_kind(value: object) -> str:
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


# --- patterns ----------------------------------------------------------------------------

_UNCOMPILED = object()
_patterns: dict[str, Any] = {}
_MATCH_EVERYTHING = frozenset({
    "[\\S\\s]*", "[\\s\\S]*", "^[\\S\\s]*$", "^[\\s\\S]*$", "[\\p{all}]*", "(?s).*",
})

# Java's POSIX classes are ASCII-only; the regex module reads the same names as Unicode.
_POSIX_CLASSES = {
    "Lower": "a-z", "Upper": "A-Z", "ASCII": "\\x00-\\x7F", "Alpha": "a-zA-Z",
    "Digit": "0-9", "Alnum": "a-zA-Z0-9", "Punct": "!-/:-@\\[-`{-~", "Graph": "!-~",
    "Print": " -~", "Blank": " \\t", "Cntrl": "\\x00-\\x1F\\x7F", "XDigit": "0-9a-fA-F",
    "Space": " \\t\\n\\x0B\\f\\r",
    # Java-only names.
    "LD": "\\p{L}\\p{Nd}", "all": "\\s\\S", "L1": "\\x00-\\xFF",
    "javaLowerCase": "\\p{Ll}", "javaUpperCase": "\\p{Lu}",
    "javaWhitespace": "\\t-\\r\\x1C-\\x1F\\p{Zs}\\p{Zl}\\p{Zp}",
}
# Java's \w, \d and \s are ASCII-only too (without UNICODE_CHARACTER_CLASS).
_SHORTHANDS = {"w": "a-zA-Z0-9_", "d": "0-9", "s": " \\t\\n\\x0B\\f\\r"}


def _compile_pattern(pattern: str) -> Any:
    """Compile a model's Java pattern with the regex module, or None (logged) if it can't."""
    try:
        return _patterns[pattern]
    except KeyError:
        pass
    if pattern in _MATCH_EVERYTHING:
        _patterns[pattern] = None
        return None
    import regex

    try:
        translated, needs_v1 = _translate_java_regex(pattern)
        compiled = regex.compile(translated, regex.V1 if needs_v1 else regex.V0)
    except Exception as exc:  # regex raises its own error class, and ValueError for \x{..}
        log.debug("skipping model pattern %r, which regex cannot compile: %s", pattern, exc)
        compiled = None
    _patterns[pattern] = compiled
    return compiled


def _matches(compiled: Any, value: str) -> bool:
    if len(value) < 1024:
        return compiled.fullmatch(value) is not None
    try:  # long values could make a backtracking pattern crawl
        return compiled.fullmatch(value, timeout=1.0) is not None
    except TimeoutError:  # don't reject what could not be decided
        return True


def _translate_java_regex(pattern: str) -> tuple[str, bool]:
    """Rewrite Java-only syntax for the regex module; True when V1 set syntax is needed."""
    out: list[Any] = []  # strings, and (letter, ascii_body) markers for \\w \\d \\s
    needs_v1 = False
    depth = 0  # character-class nesting
    class_start = 0  # index in ``out`` where the outermost class began
    class_has_negated = False
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if depth and ch == "-" and out and isinstance(out[-1], tuple | _InlinedSet):
            # Java reads '-' after a class escape as a literal; after the inlined ASCII
            # range it would start a new range.
            out.append("\\-")
            i += 1
            continue
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt in "pP" and i + 2 < n:
                if pattern[i + 2] == "{":
                    end = pattern.index("}", i + 3)
                    name, i = pattern[i + 3:end], end + 1
                else:
                    name, i = pattern[i + 2], i + 3
                out.append(_property(name, negated=nxt == "P", in_class=depth > 0))
                class_has_negated |= nxt == "P"
                continue
            if nxt in "wds":
                body = _SHORTHANDS[nxt]
                out.append((nxt, body if depth else f"[{body}]"))
            elif nxt in "WDS":
                out.append(f"\\{nxt}" if depth else f"[^{_SHORTHANDS[nxt.lower()]}]")
                class_has_negated = True
            elif nxt == "x" and pattern.startswith("{", i + 2):
                end = pattern.index("}", i + 3)
                out.append(f"\\U{int(pattern[i + 3:end], 16):08X}")
                i = end + 1
                continue
            elif nxt == "u" and _is_surrogate_pair(pattern, i):
                high, low = int(pattern[i + 2:i + 6], 16), int(pattern[i + 8:i + 12], 16)
                out.append(f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08X}")
                i += 12
                continue
            elif nxt == "Q":
                end = pattern.find("\\E", i + 2)
                end = n if end < 0 else end
                out.append("".join(c if c.isalnum() else f"\\{c}" for c in pattern[i + 2:end]))
                i = end + 2
                continue
            else:
                out.append(pattern[i:i + 2])
            i += 2
            continue
        if ch == "[":
            if depth:
                needs_v1 = True  # Java nests classes as unions, as regex's V1 does
            else:
                class_start, class_has_negated = len(out), False
            depth += 1
            out.append(ch)
            i += 1
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):  # a leading ']' is a literal
                out.append("\\]")
                i += 1
            continue
        if ch == "]" and depth:
            depth -= 1
            if not depth:
                _finish_class(out, class_start, class_has_negated)
        elif ch == "&" and depth and pattern.startswith("&&", i):
            needs_v1 = True
        out.append(ch)
        i += 1
    _finish_class(out, 0, class_has_negated=False)
    return "".join(out), needs_v1


def _finish_class(out: list, start: int, class_has_negated: bool) -> None:
    """Resolve shorthand markers from ``start`` on: ASCII sets, or the originals in a
    class that also holds a negated shorthand (so ``[\\s\\S]`` still matches anything)."""
    for j in range(start, len(out)):
        if isinstance(out[j], tuple):
            letter, body = out[j]
            out[j] = f"\\{letter}" if class_has_negated else body


class _InlinedSet(str):
    """A POSIX class's ASCII ranges written into an enclosing character class."""

    __slots__ = ()


def _property(name: str, negated: bool, in_class: bool) -> str:
    body = _POSIX_CLASSES.get(name)
    if body is None:
        return f"\\{'P' if negated else 'p'}{{{name}}}"
    if in_class:
        if negated:  # no way to inline a complement into a class; keep Unicode semantics
            return f"\\P{{{name}}}"
        return _InlinedSet(body)
    return f"[{'^' if negated else ''}{body}]"


def _is_surrogate_pair(pattern: str, i: int) -> bool:
    candidate = pattern[i:i + 12]
    if len(candidate) < 12 or candidate[6:8] != "\\u":
        return False
    try:
        high, low = int(candidate[2:6], 16), int(candidate[8:12], 16)
    except ValueError:
        return False
    return 0xD800 <= high <= 0xDBFF and 0xDC00 <= low <= 0xDFFF


# --- output rendering --------------------------------------------------------------------


def serialize_output(shape: StructureShape | None, value: object) -> object:
    """Render a handler's result as the JSON wire form of output ``shape``.

    Datetimes become epoch seconds (millisecond precision), bytes become base64 text;
    ``None`` members and keys the shape does not name are dropped.
    """
    if shape is None:
        return {}
    plan = _plan_for(shape)
    if value is None and plan.type_name == "structure":
        return {}
    return _render(plan, value)


def _render(plan: _Plan, value: Any) -> Any:
    render = plan.render
    return value if render is None else render(plan, value)


def _render_structure(plan: _Plan, value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise TypeError(f"{plan.shape.name} must be rendered from a mapping, "
                        f"not {type(value).__name__}")
    by_name = plan.struct().by_name
    out = {}
    for key, item in value.items():
        member = by_name.get(key)
        if member is None or item is None:
            continue
        child = member.plan
        out[member.wire] = item if child.render is None else child.render(child, item)
    return out


def _render_list(plan: _Plan, value: Any) -> Any:
    member = plan.member
    if member.render is None:
        return list(value)
    return [member.render(member, item) for item in value]


def _render_map(plan: _Plan, value: Any) -> Any:
    child = plan.value
    if child.render is None:
        return {key: item for key, item in value.items() if item is not None}
    return {key: child.render(child, item) for key, item in value.items() if item is not None}


def _render_timestamp(plan: _Plan, value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    moment = _to_datetime(value)
    if moment is None:
        raise TypeError(f"{plan.shape.name} must be rendered from a datetime, "
                        f"not {type(value).__name__}")
    return round(moment.timestamp(), 3)


def _render_blob(plan: _Plan, value: Any) -> Any:
    if isinstance(value, str):
        value = value.encode()
    return base64.b64encode(bytes(value)).decode("ascii")


_RENDERERS: dict[str, Callable[[_Plan, Any], Any]] = {
    "structure": _render_structure,
    "list": _render_list,
    "map": _render_map,
    "timestamp": _render_timestamp,
    "blob": _render_blob,
}
