"""The search index never hides a match: for every substring of awkward titles, in several cases,
the statement that looks up the owner's keys finds what a walk over the owner's tasks finds."""

import random

import httpx
import pytest

from app.search import contains, search_keys
from app.tasks import LIST, ListShape
from tests.conftest import create_task, truncate
from tests.databases import connect

TITLES = [
    "Buy milk, eggs & bread",
    "Café au lait: naïve façade",
    "Straße İstanbul ĲSSELMEER",
    "C++ / C# / F#-code re-do: x_y 50%",
    "emoji 🎉 party🎉time",
    "x",
    "ab",
    "Kelvin 5\u212a ohm \u2126",
    "tab\tand\nnewline",
    "ALLCAPS123abc 00042",
]
DESCRIPTIONS = [None, "Details of task 7", "déjà vu — ünïcödé", "back\\slash 'quote' \"dq\""]


def _variants(text: str, chosen: random.Random) -> set[str]:
    """Substrings of `text` (all of up to six characters, some longer), each also upper- and
    mixed-case."""
    pieces = {text[i:j] for i in range(len(text)) for j in range(i + 1, min(len(text), i + 6) + 1)}
    starts = chosen.sample(range(len(text)), min(8, len(text)))
    pieces |= {text[i : i + chosen.randint(4, 40)] for i in starts}
    out = set()
    for piece in pieces:
        if "\x00" in piece or not piece:
            continue
        out |= {piece, piece.upper(), "".join(chosen.choice((c.lower(), c.upper())) for c in piece)}
    return {piece[:100] for piece in out}


async def test_keys_never_hide_a_match(database_url: str) -> None:
    await truncate(database_url)
    walk = LIST[ListShape(False, True, False, False, False)]
    keyed = LIST[ListShape(False, True, True, False, False)]
    chosen = random.Random(7)
    async with connect(database_url) as connection:
        await connection.execute("INSERT INTO users (id, task_count) VALUES ('alice', 40)")
        for title in TITLES:
            for description in DESCRIPTIONS:
                await connection.execute(
                    "INSERT INTO tasks (user_id, title, description) VALUES ('alice', $1, $2)",
                    title,
                    description,
                )
        keyed_matches = 0
        for text in sorted({v for t in TITLES + DESCRIPTIONS if t for v in _variants(t, chosen)}):
            keys = search_keys("alice", text)
            # Python's case mapping is not always PostgreSQL's ("İ".lower() is two characters):
            # the walk says what matches.
            expected = [
                row[0] for row in await connection.fetch(walk, "alice", 1000, contains(text))
            ]
            if keys:
                found = await connection.fetch(keyed, "alice", 1000, keys, contains(text))
                assert [row[0] for row in found] == expected, (text, keys)
                keyed_matches += bool(expected)
    assert keyed_matches > 1000


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        ("task 5", ["ask", "tas"]),  # "5" alone: no key for a word's first character
        ("task 57", [" 57", "ask", "tas"]),  # " 57": a word starts there
        ("ask", ["ask"]),
        ("ab", []),
        (" ab ", [" ab"]),  # no key for a word's end
        ("Milk-", ["ilk", "mil"]),
        ("café", ["caf"]),  # "afé" holds a character outside ASCII
        ("ALLCAPS123", ["123", "all", "aps", "cap", "lca", "llc", "ps1", "s12"]),
        ("%_\\", []),
    ],
)
def test_the_keys_of_a_search(text: str, keys: list[str]) -> None:
    assert search_keys("u1", text) == [f"u1 {key}" for key in keys]


async def test_a_task_is_keyed_by_its_ascii_trigrams_and_word_starts(database_url: str) -> None:
    """No key for a word's end or its first character alone, and none with a character outside
    ASCII: no search looks for them."""
    async with connect(database_url) as connection:
        keys = await connection.fetchval(
            "SELECT task_search_trigrams('u1', 'Buy MILK-2x', 'at the café')"
        )
    expected = [" 2x", " at", " bu", " ca", " mi", " th", "buy", "caf", "ilk", "mil", "the"]
    assert sorted(keys) == [f"u1 {key}" for key in expected]


async def test_short_and_non_ascii_searches_through_the_api(client: httpx.AsyncClient) -> None:
    await create_task(client, title="Café au lait")
    await create_task(client, title="ab")
    await create_task(client, title="party 🎉 time")
    for text, expected in (
        ("a", ["Café au lait", "ab", "party 🎉 time"]),
        ("AB", ["ab"]),
        ("É A", ["Café au lait"]),
        ("🎉", ["party 🎉 time"]),
        ("y 🎉 t", ["party 🎉 time"]),
        ("LAIT", ["Café au lait"]),
    ):
        response = await client.get("/users/alice/tasks", params={"q": text})
        assert [task["title"] for task in response.json()] == expected, text
