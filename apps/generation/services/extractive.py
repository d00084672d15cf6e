"""Answers without a language model: the passages' sentences that best match the question.

``answer_extract`` is what Sluice answers with when no generation server is configured
or the configured one cannot answer (the ``extractive`` backend in backends.py). It never
writes a word of its own: it quotes whole sentences from the passages, each followed by
its citation ``[n]`` (n is the passage's 1-based position in ``passages``), and the text
starts with ``EXTRACTIVE_LABEL`` so that nobody mistakes it for a model's answer.

Scoring is lexical and deterministic: lower-cased words of the question, less stop-words
and a crude plural folding, matched against each sentence; a match is worth more the
rarer the word is among all the passages' sentences (an IDF weight), so "HNSW" beats
"index". Sentences are picked one at a time, and each pick halves the weight of the words
it covered, so a question about two things tends to get a sentence for each; a sentence
matching less than a quarter of what the best one matched is left out. Passages
are already ranked, so a sentence from a higher-ranked passage gets a small bonus, less
than any word match. The picked sentences are shown in document order (passage rank, then
position), not in score order, so the answer reads as the sources do.
"""
import dataclasses
import math
import re

from .prompting import Passage

EXTRACTIVE_LABEL = "Extractive answer (no language model was used; sentences quoted from the sources):"
NO_MATCH = "No passages in this collection match the question."
NO_OVERLAP = "No sentence in the passages shares a word with the question; the best-ranked passage says:"
# Less than the smallest word-match weight (log 2), so ranking only breaks near-ties.
RANK_BONUS = 0.5
# How much of a word's weight is left once a picked sentence has covered it.
COVERED_WEIGHT = 0.5
# A further sentence must match at least this fraction of what the best one matched.
MIN_RELATIVE_MATCH = 0.25
MIN_SENTENCE_WORDS = 3
ELLIPSIS = "…"

# Where a sentence ends: terminal punctuation (and closing quotes or brackets) followed
# by whitespace, CJK full stops, or a line break (list items, headings, table rows).
_SENTENCE_BREAK = re.compile(r"""[.!?…]+["'”’)\]]*\s+|[。！？]+["'”’)\]」』]*\s*|\n\s*""")
_WORD = re.compile(r"\w+")
_SPACES = re.compile(r"\s+")
_STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing done down during
    each either else ever every few for from further get gets got had has have having he
    her here hers herself him himself his how i if in into is it its itself just let like
    may me might more most much must my myself no nor not now of off on once only or other
    our ours ourselves out over own please same shall she should so some such tell than
    that the their theirs them themselves then there these they this those through to too
    under until up upon us very was we were what when where whether which while who whom
    whose why will with within without would you your yours yourself yourselves
    """.split()
)


@dataclasses.dataclass(frozen=True)
class ExtractiveAnswer:
    """The labelled answer text and the passage numbers (1-based) it quotes."""

    text: str
    citations: list[int]


@dataclasses.dataclass
class _Sentence:
    text: str
    rank: int  # index of its passage in the ranked list
    position: int  # index within its passage
    terms: frozenset[str]


def answer_extract(
    *,
    question: str,
    passages: list[Passage],
    max_sentences: int = 3,
    max_chars: int = 800,
) -> ExtractiveAnswer:
    """Up to ``max_sentences`` sentences quoted from ``passages`` (best first), each cited;
    the quoted sentences and their citations take at most ``max_chars`` characters (the
    label is not counted; a lone sentence too long is cut at a word, ending in "…")."""
    if max_sentences < 1:
        raise ValueError(f"max_sentences must be positive, got {max_sentences}")
    sentences = _sentences_collect(passages=passages)
    if not sentences:
        return ExtractiveAnswer(text=f"{EXTRACTIVE_LABEL}\n{NO_MATCH}", citations=[])

    question_terms = frozenset(_terms(question))
    document_frequency: dict[str, int] = {}
    for sentence in sentences:
        for term in sentence.terms & question_terms:
            document_frequency[term] = document_frequency.get(term, 0) + 1
    weights = {
        term: math.log(1 + len(sentences) / count) for term, count in document_frequency.items()
    }
    overlap = bool(weights)
    if not overlap:
        # Retrieval ranked these passages for a reason (perhaps semantic similarity), so the
        # best one's opening sentences are still the best guess; the answer says so.
        candidates = sentences
    else:
        candidates = [sentence for sentence in sentences if sentence.terms & weights.keys()]

    picked = _sentences_pick(
        candidates=candidates, weights=weights, max_sentences=max_sentences, max_chars=max_chars
    )
    picked.sort(key=lambda sentence: (sentence.rank, sentence.position))
    body = " ".join(f"{sentence.text} [{sentence.rank + 1}]" for sentence in picked)
    if not overlap:
        body = f"{NO_OVERLAP} {body}"
    return ExtractiveAnswer(
        text=f"{EXTRACTIVE_LABEL}\n{body}",
        citations=sorted({sentence.rank + 1 for sentence in picked}),
    )


def _sentences_pick(
    *, candidates: list[_Sentence], weights: dict[str, float], max_sentences: int, max_chars: int
) -> list[_Sentence]:
    weights = dict(weights)
    remaining = list(candidates)
    picked: list[_Sentence] = []
    used_chars = 0
    first_score = None

    def match(sentence: _Sentence) -> float:
        return sum(weights.get(term, 0.0) for term in sentence.terms)

    while remaining and len(picked) < max_sentences:
        # Highest score; ties go to the higher-ranked passage, then the earlier sentence.
        best = max(
            remaining,
            key=lambda s: (match(s) + RANK_BONUS / (s.rank + 1), -s.rank, -s.position),
        )
        if first_score is None:
            first_score = match(best)
        elif match(best) < MIN_RELATIVE_MATCH * first_score:
            break  # what is left matches a stray common word; quoting it would be noise
        remaining.remove(best)
        citation = f" [{best.rank + 1}]"
        separator = 1 if picked else 0
        room = max_chars - used_chars - separator - len(citation)
        if len(best.text) > room:
            if picked:
                continue  # a shorter sentence further down may still fit
            best = dataclasses.replace(best, text=_text_cut(text=best.text, max_chars=room))
            if not best.text:
                break
        picked.append(best)
        used_chars += separator + len(best.text) + len(citation)
        for term in best.terms:
            if term in weights:
                weights[term] *= COVERED_WEIGHT
    return picked


def _sentences_collect(*, passages: list[Passage]) -> list[_Sentence]:
    """Every quotable sentence, once (overlapping chunks repeat sentences)."""
    seen: set[str] = set()
    sentences = []
    for rank, passage in enumerate(passages):
        for position, text in enumerate(_sentences_split(passage.text)):
            key = _SPACES.sub(" ", text).lower()
            if key in seen or text.startswith("#"):  # headings are not statements
                continue
            if len(_WORD.findall(text)) < MIN_SENTENCE_WORDS:
                continue
            seen.add(key)
            sentences.append(
                _Sentence(
                    text=_SPACES.sub(" ", text), rank=rank, position=position, terms=frozenset(_terms(text))
                )
            )
    return sentences


def _sentences_split(text: str) -> list[str]:
    sentences = []
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        sentence = text[start : match.end()].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _terms(text: str) -> list[str]:
    terms = []
    for word in _WORD.findall(text.lower()):
        if word in _STOP_WORDS or (len(word) < 2 and not word.isdigit()):
            continue
        terms.append(_stem(word))
    return terms


def _stem(word: str) -> str:
    # Plural folding only ("indexes"/"index" stay apart, "passages"/"passage" meet):
    # enough for question words to meet their sentence, and never merges unrelated words.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _text_cut(*, text: str, max_chars: int) -> str:
    """``text`` cut at a word boundary to at most ``max_chars`` characters, with "…"."""
    if max_chars <= len(ELLIPSIS):
        return ""
    cut = text[: max_chars - len(ELLIPSIS) + 1]
    boundary = cut.rfind(" ")
    if boundary <= 0:
        return ""
    return cut[:boundary].rstrip() + ELLIPSIS
