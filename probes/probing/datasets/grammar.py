"""Probing tasks generated from a small grammar, with labels known by construction.

The lexicon lives in ``data/grammar/lexicon.json``. A sentence is built as a
tree walk that records, for every word, its part of speech, and for the
sentence its main subject's number, main verb's tense and depth of embedding::

    S(d)   -> NP VP0                            d = 0
            | NP VP_say "that" S(d-1)           complement clause
            | NP RC(d-1) VP0                    relative clause on the subject
    RC(k)  -> REL V_trans NP  (k = 0) | REL V_say "that" S(k-1)
    NP     -> Det [Adj] N [P Det N]
    VP0    -> V_intr [Adv] | V_trans NP

Tasks: ``pos`` (word level), ``subject_number``, ``tense``, ``length``,
``bigram_shift``, ``depth`` (sentence level). ``lexical_split=True`` draws
train and test sentences from disjoint halves of the content words, so a probe
cannot pass the test by remembering words.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from functools import lru_cache

from probes.core.data import DATA_DIR, DatasetError

from .base import ProbingDataset

LEXICON_PATH = DATA_DIR / "grammar" / "lexicon.json"
TASKS = ("pos", "subject_number", "tense", "length", "bigram_shift", "depth")
LENGTH_BUCKETS = ((0, 6, "<=6"), (7, 9, "7-9"), (10, 13, "10-13"), (14, 10_000, ">=14"))
CONTENT = ("nouns", "objects", "transitive", "intransitive", "saying", "adjectives")


@lru_cache(maxsize=1)
def lexicon() -> dict:
    return json.loads(LEXICON_PATH.read_text())


@dataclass
class Sentence:
    words: list[str] = field(default_factory=list)
    pos: list[str] = field(default_factory=list)
    number: str = ""  # of the main subject
    tense: str = ""  # of the main verb
    depth: int = 0

    def add(self, word: str, tag: str) -> None:
        self.words.append(word)
        self.pos.append(tag)


class Grammar:
    """Samples sentences from one half (or all) of the content lexicon."""

    def __init__(self, rng: random.Random, part: str | None = None, split_seed: int = 0):
        lex = lexicon()
        self.rng = rng
        self.lex = {k: lex[k] for k in CONTENT}
        if part is not None:  # "train" or "test": disjoint halves of every content class
            split_rng = random.Random(split_seed)
            halves = {}
            for key, items in self.lex.items():
                shuffled = list(items)
                split_rng.shuffle(shuffled)
                cut = len(shuffled) // 2
                halves[key] = shuffled[:cut] if part == "train" else shuffled[cut:]
            self.lex = halves
        self.det = lex["determiners"]
        self.prep = lex["prepositions"]
        self.adv = lex["adverbs"]

    def choice(self, items):
        return self.rng.choice(items)

    def np(self, s: Sentence, number: str, pool: str = "nouns", pp: bool = True) -> None:
        s.add(self.choice(self.det[number]), "DET")
        if self.rng.random() < 0.3:
            s.add(self.choice(self.lex["adjectives"]), "ADJ")
        s.add(self.choice(self.lex[pool])[0 if number == "singular" else 1], "NOUN")
        if pp and self.rng.random() < 0.2:
            s.add(self.choice(self.prep), "ADP")
            self.np(s, self.number(), "objects", pp=False)

    def number(self) -> str:
        return self.choice(("singular", "plural"))

    def verb(self, s: Sentence, pool: str, number: str, tense: str) -> None:
        forms = self.choice(self.lex[pool])
        s.add(forms[2] if tense == "past" else forms[0 if number == "singular" else 1], "VERB")

    def vp0(self, s: Sentence, number: str, tense: str) -> None:
        if self.rng.random() < 0.5:
            self.verb(s, "intransitive", number, tense)
            if self.rng.random() < 0.4:
                s.add(self.choice(self.adv), "ADV")
        else:
            self.verb(s, "transitive", number, tense)
            self.np(s, self.number(), "objects")

    def rc(self, s: Sentence, head_number: str, depth: int) -> None:
        s.add(self.choice(("that", "who")), "PRON")
        tense = self.choice(("present", "past"))
        if depth == 0:
            self.verb(s, "transitive", head_number, tense)
            self.np(s, self.number(), "objects", pp=False)
        else:
            self.verb(s, "saying", head_number, tense)
            s.add("that", "SCONJ")
            self.clause(s, depth - 1)

    def clause(self, s: Sentence, depth: int, number: str | None = None, tense: str | None = None) -> tuple[str, str]:
        number = number or self.number()
        tense = tense or self.choice(("present", "past"))
        kind = "simple" if depth == 0 else self.choice(("complement", "relative"))
        self.np(s, number, pp=kind != "relative")
        if kind == "relative":
            self.rc(s, number, depth - 1)
        if kind == "complement":
            self.verb(s, "saying", number, tense)
            s.add("that", "SCONJ")
            self.clause(s, depth - 1)
        else:
            self.vp0(s, number, tense)
        return number, tense

    def sentence(self, depth: int, number: str | None = None, tense: str | None = None) -> Sentence:
        s = Sentence(depth=depth)
        s.number, s.tense = self.clause(s, depth, number, tense)
        s.add(".", "PUNCT")
        return s


def length_bucket(n_words: int) -> str:
    return next(name for lo, hi, name in LENGTH_BUCKETS if lo <= n_words <= hi)


def generate(
    task: str, n: int = 2000, *, seed: int = 0, lexical_split: bool = False, test_fraction: float = 0.25
) -> ProbingDataset:
    """``n`` examples of ``task``, with a train/test split (by sentence, or by word when ``lexical_split``)."""
    if task not in TASKS:
        raise DatasetError(f"unknown grammar task {task!r}: choose from {', '.join(TASKS)}")
    if n < 4:
        raise DatasetError(f"n must be at least 4 to have train and test examples of two classes, got {n}")
    rng = random.Random(f"{task}-{seed}")
    n_test = max(2, round(n * test_fraction))
    parts = ["test"] * n_test + ["train"] * (n - n_test)
    rng.shuffle(parts)
    grammars = (
        {p: Grammar(rng, p, split_seed=seed) for p in ("train", "test")}
        if lexical_split
        else {p: Grammar(rng) for p in ("train", "test")}
    )
    words, labels = [], []
    for i, part in enumerate(parts):
        g = grammars[part]
        sentence, label = _example(task, g, rng, i)
        words.append(sentence.words if task != "bigram_shift" else label[0])
        labels.append(sentence.pos if task == "pos" else (label[1] if task == "bigram_shift" else label))
    return ProbingDataset(task, "word" if task == "pos" else "sentence", words, labels, parts, _DESCRIPTIONS[task])


def _example(task: str, g: Grammar, rng: random.Random, i: int):
    if task == "subject_number":
        s = g.sentence(rng.choice((0, 0, 1)), number=("singular", "plural")[i % 2])
        return s, s.number
    if task == "tense":
        s = g.sentence(rng.choice((0, 0, 1)), tense=("present", "past")[i % 2])
        return s, s.tense
    if task == "depth":
        s = g.sentence(i % 3)
        return s, str(s.depth)
    if task == "length":
        target = LENGTH_BUCKETS[i % len(LENGTH_BUCKETS)][2]
        for _ in range(200):  # rejection sampling keeps the buckets balanced
            s = g.sentence(rng.choice((0, 1, 1, 2)))
            if length_bucket(len(s.words)) == target:
                break
        return s, length_bucket(len(s.words))
    if task == "bigram_shift":
        s = g.sentence(rng.choice((0, 1)))
        words = list(s.words)
        if i % 2:  # swap two adjacent words (never the final full stop)
            j = rng.randrange(len(words) - 2)
            words[j], words[j + 1] = words[j + 1], words[j]
        return s, (words, ("original", "swapped")[i % 2])
    s = g.sentence(rng.choice((0, 1)))  # pos
    return s, None


def _alternating(n: int, seed: str):
    """(i, grammar, lexicon, subject number, attractor number) for n items, singular and plural in turn."""
    g, lex = Grammar(random.Random(seed)), lexicon()
    for i in range(n):
        number = ("singular", "plural")[i % 2]
        yield i, g, lex, number, "plural" if number == "singular" else "singular"


def _attractor(g: Grammar, s: Sentence, kind: str, number: str) -> None:
    """A noun of ``number`` between subject and verb: in a PP ("near the cabinets") or an object relative clause."""
    if kind == "pp":
        s.add(g.choice(g.prep), "ADP")
        g.np(s, number, "objects", pp=False)
    else:
        s.add("that", "PRON")
        g.np(s, number, pp=False)
        g.verb(s, "transitive", number, "present")


def _verb_pair(g: Grammar, lex: dict, number: str) -> tuple[str, str]:
    """(agreeing, disagreeing) present forms of an intransitive verb for a subject of ``number``."""
    verb = g.choice(lex["intransitive"])
    return (verb[0], verb[1]) if number == "singular" else (verb[1], verb[0])


def _agreement_row(i: int, good: str, bad: str, uid: str, number: str) -> dict:
    """One agreement minimal pair in BLiMP's JSONL layout, with the subject's number and the pair's index."""
    return {
        "sentence_good": good,
        "sentence_bad": bad,
        "UID": uid,
        "field": "syntax",
        "linguistics_term": "subject_verb_agreement",
        "subject_number": number,
        "pair_id": i,
    }


def agreement_pairs(n: int = 200, *, seed: int = 0) -> list[dict]:
    """Subject-verb agreement minimal pairs across an attractor, in BLiMP's JSONL layout.

    Half put the attractor in a prepositional phrase ("the key near the cabinets
    is..."), half in an object relative clause ("the teacher that the dogs like
    sleeps"); the attractor's number always differs from the subject's.
    """
    rows = []
    for i, g, lex, number, other in _alternating(n, f"agreement-{seed}"):
        kind = ("pp", "rc")[(i // 2) % 2]
        s = Sentence()
        g.np(s, number, pp=False)
        _attractor(g, s, kind, other)
        good, bad = _verb_pair(g, lex, number)
        prefix = " ".join(s.words)
        rows.append(_agreement_row(i, f"{prefix} {good} .", f"{prefix} {bad} .", f"agreement_{kind}_attractor", number))
    return rows


def simple_agreement_pairs(n: int = 200, *, seed: int = 0) -> list[dict]:
    """Subject-verb agreement minimal pairs with nothing between subject and verb ("the tall dog sleeps ." vs
    "the tall dog sleep ."), in BLiMP's JSONL layout: the easy case beside ``agreement_pairs``' attractors."""
    rows = []
    for i, g, lex, number, _ in _alternating(n, f"simple-agreement-{seed}"):
        s = Sentence()
        g.np(s, number, pp=False)
        good, bad = _verb_pair(g, lex, number)
        prefix = " ".join(s.words)
        rows.append(_agreement_row(i, f"{prefix} {good} .", f"{prefix} {bad} .", "agreement_simple", number))
    return rows


def copula_agreement_pairs(n: int = 200, *, seed: int = 0) -> list[dict]:
    """Agreement of the copula with a plain subject ("The tall dog is old." vs "The tall dog are old."), in
    BLiMP's JSONL layout: a grammatical behaviour small models get right (``smollm2-135m``: 99% of 200), where
    the lexical-verb pairs of ``simple_agreement_pairs`` stay at 71% for that model."""
    rows = []
    for i, g, lex, number, _ in _alternating(n, f"copula-agreement-{seed}"):
        s = Sentence()
        g.np(s, number, pp=False)
        good, bad = ("is", "are") if number == "singular" else ("are", "is")
        subject = " ".join(s.words)
        subject = subject[0].upper() + subject[1:]
        adjective = g.choice(lex["adjectives"])
        rows.append(
            _agreement_row(
                i, f"{subject} {good} {adjective}.", f"{subject} {bad} {adjective}.", "agreement_copula", number
            )
        )
    return rows


def agreement_prompts(n: int = 64, *, seed: int = 0) -> list[dict]:
    """Clean / corrupted prompt pairs for activation patching of subject-verb agreement.

    The clean prompt ("the key near these cabinets") and the corrupted one ("the keys
    near these cabinets") differ only in the subject's number; the answers are the
    verb form the clean prompt wants and the one the corrupted prompt wants.
    """
    rows = []
    for i, g, lex, number, other in _alternating(n, f"agreement-prompts-{seed}"):
        noun = g.choice(lex["nouns"])
        words = ["the", noun[0 if number == "singular" else 1]]
        flipped = ["the", noun[1 if number == "singular" else 0]]
        s = Sentence()
        _attractor(g, s, ("pp", "rc")[(i // 2) % 2], other)
        right, wrong = _verb_pair(g, lex, number)
        rows.append(
            {
                "clean": " ".join(words + s.words),
                "corrupt": " ".join(flipped + s.words),
                "answer": " " + right,
                "wrong": " " + wrong,
                "subject_number": number,
                "pair_id": i,
            }
        )
    return rows


_DESCRIPTIONS = {
    "pos": "part of speech of every word (DET, ADJ, NOUN, VERB, ADP, ADV, PRON, SCONJ, PUNCT)",
    "subject_number": "number of the main clause's subject (singular / plural)",
    "tense": "tense of the main verb (present / past)",
    "length": "sentence length in words, bucketed (<=6, 7-9, 10-13, >=14)",
    "bigram_shift": "two adjacent words swapped or not (Conneau et al. 2018)",
    "depth": "depth of clause embedding (0, 1, 2)",
}
