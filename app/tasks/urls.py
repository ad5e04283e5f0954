"""The URLs the service gives out, in `Location` and `Link`: relative to the API's base URL, with
the user's id percent-encoded as one path segment.

An id holds letters, digits and `_ - . | : @` (the contract's UserId). RFC 3986 does not allow `|`
in a path as it is; `:` and `@` it allows, and they are encoded too: every character outside its
unreserved set is, as JavaScript's `encodeURIComponent` does, so that the URL a generated client
builds for an id and the one the service gives for it are the same string. Ids of letters, digits,
`_`, `-` and `.` come out unchanged, as every id did before `|`, `:` and `@` were allowed: the
answers stored for keyed creates before then stay what a create gives now.
"""

from urllib.parse import quote


def tasks_url(user_id: str) -> str:
    """The URL of a user's tasks: `/users/auth0%7C5f7c8ec7c33c6c004bbafe82/tasks`."""
    return f"/users/{quote(user_id, safe='')}/tasks"
