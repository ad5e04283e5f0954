"""Conditional requests (RFC 9110 §13) over the tasks' versions.

A task's entity tag is its version, which the database moves in the statement that changes the
task: `"7"`. If-Match and If-None-Match are `*` or a comma-separated list of entity tags: the
contract's pattern for them, which the generated routes check (422 for any other value).
"""

import re

from app.problems import PreconditionRequired

_TAGS = re.compile(r'(W/)?"([^"]*)"')
_VERSION = re.compile(r"[1-9][0-9]{0,17}")


def etag(version: int) -> str:
    return f'"{version}"'


def _entity_tags(header: str) -> list[tuple[bool, str]]:
    """(weak, opaque) for each entity tag of the list."""
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
        for weak, opaque in _entity_tags(if_match)
        if not weak and _VERSION.fullmatch(opaque)
    ]


def not_modified(if_none_match: str | None, current: str) -> bool:
    """Whether If-None-Match names the current entity tag (weak comparison), or is `*`."""
    if if_none_match is None:
        return False
    if if_none_match == "*":
        return True
    return any(f'"{opaque}"' == current for _, opaque in _entity_tags(if_none_match))
