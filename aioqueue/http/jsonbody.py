"""Reading a request's JSON body, and refusing what the server could not store or echo exactly.

orjson parses up to 1,024 levels of nesting but writes only 255, and it turns an integer
beyond 64 bits into a float. Both would surface later, as a 500 (the idempotency digest
re-encodes the input) or as a silently changed number (``echo`` returns ``1.8e19`` for
``18446744073709551616``). So a body nested deeper than ``max_depth`` or holding an
integer outside the 64-bit range is refused here with a 400 naming the problem.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from ..errors import InvalidRequest

#: the range of integers orjson reads and writes exactly: int64 and uint64
_LOW, _HIGH = -(2**63), 2**64 - 1
#: a run of digits long enough to be an integer beyond 64 bits (20 digits and up)
_LONG_DIGITS = re.compile(rb"[0-9]{20}")


def parse_json(raw: bytes, max_depth: int) -> Any:
    """The value of ``raw``; ``InvalidRequest`` for bad JSON, deep nesting or a huge integer."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from None
    # cheap filters first: most bodies have few brackets and no 20-digit run
    if raw.count(b"[") + raw.count(b"{") > max_depth:
        _check_depth(value, max_depth)
    if _LONG_DIGITS.search(raw):
        _check_integers(raw)
    return value


def _check_depth(value: Any, max_depth: int) -> None:
    """Walk the containers without recursion, so no depth can overflow a stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth > max_depth:
            raise InvalidRequest(f"the body is nested deeper than {max_depth} levels",
                                 details={"max_depth": max_depth})
        stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))


def _refuse_big(literal: str) -> int:
    number = int(literal) if len(literal) <= 21 else None
    if number is None or not _LOW <= number <= _HIGH:
        raise InvalidRequest(
            "the body holds an integer beyond 64 bits; send it as a string",
            details={"integer": literal[:40] + ("..." if len(literal) > 40 else "")})
    return number


def _check_integers(raw: bytes) -> None:
    """Re-read the body with the standard parser, which hands over each integer literal
    (and only those: digits inside strings or fractions are not integers)."""
    json.loads(raw, parse_int=_refuse_big)
