"""SQL statements with named parameters: `:user_id` in the text, `$1` on the wire.

A statement is written once, as one literal, and its parameters are passed by name:

    GET = Statement("SELECT ... WHERE user_id = :user_id AND id = :task_id")
    await database.fetchrow(GET, user_id=user_id, task_id=task_id)

`::type` casts and anything inside quotes are left alone.
"""

import re
from collections.abc import Mapping

# A quoted literal or identifier (kept as it is), or a :name that is not part of a :: cast.
_TOKEN = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|(?<![:\w]):([a-z_][a-z0-9_]*)""")


class Statement:
    """One SQL statement: its text for PostgreSQL, and the names of its parameters in order."""

    __slots__ = ("names", "text")

    def __init__(self, text: str) -> None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:
                return match.group(0)
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        self.text = _TOKEN.sub(number, text.strip())
        self.names = tuple(names)

    def args(self, values: Mapping[str, object]) -> tuple[object, ...]:
        """The values in parameter order; every parameter must be given, and nothing else."""
        if values.keys() != set(self.names):
            missing = sorted(set(self.names) - values.keys())
            unknown = sorted(values.keys() - set(self.names))
            raise TypeError(f"statement parameters: missing {missing}, unknown {unknown}")
        return tuple(values[name] for name in self.names)

    def __repr__(self) -> str:
        return f"Statement({self.text!r})"
