"""Search: a case-insensitive substring of the title or the description, taken literally."""

import random

import httpx

from tests.conftest import create_task

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


async def test_every_substring_finds_its_task(client: httpx.AsyncClient) -> None:
    """Search is a case-insensitive substring match of the title or the description: for every
    short substring (and many long ones) of awkward texts, in several cases, the search finds
    exactly the tasks whose text holds it, ignoring case (ASCII case, where Python's and the
    database's case mappings agree)."""
    chosen = random.Random(7)
    texts = {}
    for title in TITLES:
        for description in DESCRIPTIONS:
            task = await create_task(client, title=title, description=description)
            texts[task["id"]] = (title, description)
    searched = 0
    for text in sorted({v for t in TITLES + DESCRIPTIONS if t for v in _variants(t, chosen)}):
        if not text.isascii():
            continue
        expected = [
            task_id
            for task_id, (title, description) in texts.items()
            if text.lower() in title.lower() or text.lower() in (description or "").lower()
        ]
        response = await client.get("/users/alice/tasks", params={"q": text, "limit": 1000})
        assert [task["id"] for task in response.json()] == expected, text
        searched += 1
    assert searched > 500


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
