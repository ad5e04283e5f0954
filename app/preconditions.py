"""Conditional requests (RFC 9110 §13) over the tasks' versions.

A task's entity tag is its version, which the database moves in the statement that changes the
task: `"7"`. If-Match and If-None-Match are `*` or a comma-separated list of entity tags; any
other value is a malformed request (400).
"""

import re

from app.problems import MalformedPrecondition, PreconditionRequired

_TAG = r'(W/)?"([\x21\x23-\x7E\x80-\xFF]*)"'
_TAG_LIST = re.compile(rf"{_TAG}(?:[ \t]*,[ \t]*{_TAG})*")
_TAGS = re.compile(_TAG)
_VERSION = re.compile(r"[1-9][0-9]{0,17}")


def etag(version: int) -> str:
    return f'"{version}"'


def etag_of(version: str) -> str:
    """The same entity tag, computed by PostgreSQL from the SQL expression `version`: a created
    task's answer is stored in the statement that creates it (app/idempotency.py)."""
    return f"'\"' || {version} || '\"'"


def _entity_tags(header: str, name: str) -> list[tuple[bool, str]]:
    """(weak, opaque) for each entity tag of the list."""
    if not _TAG_LIST.fullmatch(header):
        raise MalformedPrecondition(name)
    return [(bool(weak), opaque) for weak, opaque in _TAGS.findall(header)]


def writable_versions(if_match: str | None, *, required: bool) -> list[int] | None:
    """The versions that a write may change, from If-Match; None for any version.

    Strong comparison: a weak tag never matches, and neither does a tag that is not one of ours.
    """
    if if_match is None:
        if required:
            raise PreconditionRequired
        return None
    if if_match == "*":
        return None
    return [
        int(opaque)
        for weak, opaque in _entity_tags(if_match, "If-Match")
        if not weak and _VERSION.fullmatch(opaque)
    ]


def not_modified(if_none_match: str | None, current: str) -> bool:
    """Whether If-None-Match names the current entity tag (weak comparison), or is `*`."""
    if if_none_match is None:
        return False
    if if_none_match == "*":
        return True
    return any(
        f'"{opaque}"' == current for _, opaque in _entity_tags(if_none_match, "If-None-Match")
    )
