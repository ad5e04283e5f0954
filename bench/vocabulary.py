"""What people write in todo lists, for `make bench`: titles and descriptions made of the words of
real lists, each word drawn with Zipf's law (the n-th most common word n times less often than the
first), as words are in any text. Deterministic for a seed."""

import random
from collections.abc import Iterator
from itertools import accumulate


def _words(text: str) -> list[str]:
    return text.split()


# Most common first.
VERBS = _words("""
buy call email pay book clean fix pick-up send finish check schedule order return write read
review cancel renew water walk cook wash prepare update plan bring drop-off print sign submit
organize ask visit file text meet take charge refill clear sort pack replace install backup
register practice study feed vacuum mow iron tidy confirm follow-up invite thank apply fill-out
""")
THINGS = _words("""
milk groceries dentist mom bread eggs rent report invoice taxes car laundry dishes dog cat
plants doctor bills emails kitchen bathroom garage presentation slides meeting budget insurance
passport tickets flight hotel gift birthday cake coffee bananas apples cheese butter chicken
rice pasta tomatoes onions vet pharmacy prescription appointment haircut gym yoga homework
project proposal contract lease receipt refund package library books notes calendar password
phone laptop printer charger batteries lightbulbs towels sheets trash recycling lawn garden
fence roof windows floor fridge oven boss team client landlord plumber electrician school
teacher kids dinner lunch breakfast party wedding vacation train bus bike tires oil brakes
registration license bank loan mortgage pension savings paycheck timesheet expenses quarterly
annual review feedback interview resume portfolio website blog newsletter podcast photos album
frames paint brushes shelves desk chair couch curtains rug closet shoes jacket coat umbrella
sunscreen vitamins water juice snacks cereal yogurt beans soup spices flour sugar salt pepper
detergent soap shampoo toothpaste razor
""")
DETAILS = _words("""
before friday by monday this week tomorrow morning after work at noon on the way home for the
weekend two of them the big one the usual brand organic if on sale ask about the discount
remember the receipt bring the form use the card from the drawer call back if busy
""")

ZIPF_EXPONENT = 1.07


def _zipf(words: list[str]) -> list[float]:
    return list(accumulate(1 / rank**ZIPF_EXPONENT for rank in range(1, len(words) + 1)))


class Vocabulary:
    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self._verbs = _zipf(VERBS)
        self._things = _zipf(THINGS)
        self._mixed = DETAILS + THINGS
        self._mixed_weights = _zipf(self._mixed)

    def _words(self, words: list[str], weights: list[float], count: int) -> list[str]:
        return self.random.choices(words, cum_weights=weights, k=count)

    def title(self) -> str:
        verb = self._words(VERBS, self._verbs, 1)[0].replace("-", " ")
        things = self._words(THINGS, self._things, self.random.choice((1, 1, 1, 2, 2, 3)))
        return f"{verb.capitalize()} {' '.join(things)}"

    def description(self) -> str | None:
        if self.random.random() >= 0.4:
            return None
        count = self.random.randint(3, 14)
        return " ".join(self._words(self._mixed, self._mixed_weights, count)).capitalize()

    def tasks(self, count: int) -> Iterator[tuple[str, str | None]]:
        for _ in range(count):
            yield self.title(), self.description()


def search_terms() -> list[str]:
    """What people search for, most common first: a word of their list, or its first letters."""
    terms: list[str] = []
    for word in THINGS[:120]:
        terms.append(word)
        if len(word) > 4:
            terms.append(word[:4])
    return terms
