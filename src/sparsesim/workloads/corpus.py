"""The built-in real text: human-written English that ships with CPython, split once into a
calibration part and an evaluation part that never overlap.

CPython ships its language reference's topics as ``pydoc_data.topics`` (the text ``help()``
prints: about 465 KB of prose and grammar in 79 topics, written by the Python documentation's
authors; no model wrote it). The topics are taken in sorted order and every fifth one (the
0th, 5th, 10th, ...) goes to the calibration part, the rest to the evaluation part. Some topics
repeat paragraphs of others (``attribute-access`` is part of ``specialnames``), so the evaluation
part drops every paragraph (a block between blank lines) that the calibration part holds: no
paragraph is in both. Each part is its topics' paragraphs joined by a blank line, in sorted order.
:func:`corpus_part` returns the part with its SHA-256, which
every result that used it records (``text.sha256``), so two numbers can be told apart when they
came from different text (another CPython version ships other text).

:func:`sentence_pairs` takes sentence pairs for the encoder's quality metric verbatim from a part:
a pair is two consecutive sentences of one paragraph, so its two halves are on one subject.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from sparsesim.core.errors import InputError, arg_error

PARTS = ("calib", "eval")
CALIB_EVERY = 5
"""Every fifth topic (sorted by name, starting with the first) is calibration text."""


@dataclass(frozen=True, slots=True)
class TextPart:
    """One piece of evaluation or calibration text and where it came from."""

    name: str  # "pydoc:eval", "pydoc:calib", or the file it was read from
    text: str
    sha256: str

    @property
    def chars(self) -> int:
        return len(self.text)

    def record(self) -> dict:
        """What a result records of the text it used."""
        return {"name": self.name, "chars": self.chars, "sha256": self.sha256}


def _topics() -> dict[str, str]:
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip it
        raise InputError("the built-in corpus needs CPython's pydoc_data (give --text FILE instead)") from None
    return topics


def corpus_topics(part: str) -> list[str]:
    """The topic names of ``part`` (``calib`` or ``eval``), in the order their text is joined."""
    if part not in PARTS:
        raise arg_error("part", f"unknown corpus part {part!r} (choose from {', '.join(PARTS)})")
    names = sorted(_topics())
    return [name for i, name in enumerate(names) if (i % CALIB_EVERY == 0) == (part == "calib")]


def corpus_part(part: str) -> TextPart:
    """The built-in ``calib`` or ``eval`` text (see the module docstring)."""
    topics = _topics()
    paragraphs = _paragraphs(topics, corpus_topics(part))
    if part == "eval":
        seen = set(_paragraphs(topics, corpus_topics("calib")))
        paragraphs = [p for p in paragraphs if p not in seen]
    text = "\n\n".join(paragraphs)
    return TextPart(name=f"pydoc:{part}", text=text, sha256=hashlib.sha256(text.encode()).hexdigest())


def _paragraphs(topics: dict[str, str], names: list[str]) -> list[str]:
    """The non-blank paragraphs of the named topics, in order (trailing spaces stripped)."""
    return [block.rstrip() for name in names for block in re.split(r"\n\s*\n", topics[name].strip())
            if block.strip()]


def text_file(path: Path | str, arg: str = "text") -> TextPart:
    """A user's text file (UTF-8), refused in one line if it cannot be read or is empty."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise arg_error(arg, f"{path}: cannot read UTF-8 text ({type(exc).__name__})") from None
    if not text.strip():
        raise arg_error(arg, f"{path}: is empty")
    return TextPart(name=str(path), text=text, sha256=hashlib.sha256(text.encode()).hexdigest())


_SENTENCE = re.compile(r"(?<=[a-z0-9)][.])\s+(?=[A-Z])")


def sentence_pairs(part: TextPart, limit: int = 64, min_words: int = 6, max_words: int = 40) -> list[tuple[str, str]]:
    """Pairs of consecutive prose sentences of one paragraph of ``part``, the first ``limit``.

    A paragraph is a block between blank lines whose lines are not indented (indented lines are
    grammar or code); its sentences split at a full stop followed by a capital. Sentences of
    ``min_words`` to ``max_words`` words count, so headings and grammar rules are left out.
    """
    pairs: list[tuple[str, str]] = []
    for block in part.text.split("\n\n"):
        lines = block.splitlines()
        if not lines or any(line.startswith((" ", "\t", "*", "=", "-")) for line in lines):
            continue
        sentences = [s.strip() for s in _SENTENCE.split(" ".join(line.strip() for line in lines))]
        sentences = [s for s in sentences if min_words <= len(s.split()) <= max_words and s.endswith(".")]
        for first, second in zip(sentences[::2], sentences[1::2]):
            pairs.append((first, second))
            if len(pairs) == limit:
                return pairs
    return pairs
