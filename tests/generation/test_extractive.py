"""answer_extract: the most relevant sentences, quoted in source order, cited and labelled."""
import re

from apps.generation.services.extractive import EXTRACTIVE_LABEL, NO_MATCH, answer_extract
from apps.generation.services.prompting import Passage


def passage(number: int, text: str) -> Passage:
    return Passage(
        chunk_id=number, document_id=number, title=f"Doc {number}", text=text, score=1 - number / 10
    )


PASSAGES = [
    passage(
        1,
        "# Storage\nSluice stores every chunk in Postgres. Backups of the database run every night at two. "
        "The web server is stateless.",
    ),
    passage(
        2,
        "Search uses an HNSW index built by pgvector. The HNSW graph makes nearest-neighbour search fast "
        "even for millions of vectors. Index builds take a few minutes.",
    ),
    passage(3, "Workers are started per queue. The embed queue handles document ingestion."),
]


def body(text: str) -> str:
    label, _, rest = text.partition("\n")
    assert label == EXTRACTIVE_LABEL
    return rest


def cited(text: str) -> list[tuple[str, int]]:
    """(sentence, passage number) pairs of an answer body."""
    return [(sentence, int(number)) for sentence, number in re.findall(r"\s*(.+?) \[(\d+)\]", body(text))]


def test_the_relevant_sentence_is_quoted_with_its_passage_number() -> None:
    answer = answer_extract(question="Which queue handles the ingestion of documents?", passages=PASSAGES)

    assert answer.text.startswith(EXTRACTIVE_LABEL + "\n")
    assert cited(answer.text)[0] == ("The embed queue handles document ingestion.", 3)
    assert answer.citations == [3]


def test_rare_question_words_outweigh_common_ones() -> None:
    answer = answer_extract(question="How does the HNSW index make search fast?", passages=PASSAGES, max_sentences=1)
    assert cited(answer.text) == [
        ("The HNSW graph makes nearest-neighbour search fast even for millions of vectors.", 2)
    ]
    assert answer.citations == [2]


def test_sentences_come_in_source_order_and_citations_match() -> None:
    answer = answer_extract(
        question="When do database backups run, and which index does search use?", passages=PASSAGES
    )
    pairs = cited(answer.text)

    assert ("Backups of the database run every night at two.", 1) in pairs
    assert ("Search uses an HNSW index built by pgvector.", 2) in pairs
    assert [number for _, number in pairs] == sorted(number for _, number in pairs)
    assert answer.citations == sorted({number for _, number in pairs})
    for sentence, number in pairs:
        assert sentence in PASSAGES[number - 1].text  # quoted, never reworded


def test_a_higher_ranked_passage_wins_a_tie() -> None:
    passages = [passage(1, "The tower is very tall."), passage(2, "The tower is very old.")]
    answer = answer_extract(question="Tell me about the tower", passages=passages, max_sentences=1)
    assert answer.citations == [1]
    assert body(answer.text) == "The tower is very tall. [1]"


def test_limits_on_sentences_and_characters() -> None:
    question = "HNSW index search vectors Postgres backups queue ingestion"
    assert len(cited(answer_extract(question=question, passages=PASSAGES, max_sentences=2).text)) <= 2

    short = answer_extract(question=question, passages=PASSAGES, max_chars=60)
    assert len(body(short.text)) <= 60
    assert cited(short.text)

    tiny = answer_extract(question="HNSW graph", passages=PASSAGES, max_chars=40)
    assert len(body(tiny.text)) <= 40
    assert body(tiny.text).endswith("… [2]")


def test_no_passages() -> None:
    answer = answer_extract(question="Anything?", passages=[])
    assert answer.text == f"{EXTRACTIVE_LABEL}\n{NO_MATCH}"
    assert answer.citations == []
    blank = answer_extract(question="Anything?", passages=[passage(1, "   \n ")])
    assert blank.text == answer.text and blank.citations == []


def test_no_shared_word_falls_back_to_the_best_ranked_passage_and_says_so() -> None:
    answer = answer_extract(question="zebra quantum", passages=PASSAGES, max_sentences=1)
    assert "shares a word" in body(answer.text)
    assert answer.citations == [1]
    assert "Sluice stores every chunk in Postgres. [1]" in answer.text


def test_repeated_sentences_are_quoted_once() -> None:
    sentence = "The embed queue handles document ingestion."
    passages = [passage(1, sentence), passage(2, f"Workers start per queue. {sentence}")]
    answer = answer_extract(question="Which queue handles ingestion?", passages=passages)
    assert answer.text.count(sentence) == 1
    assert answer.citations == [1]


def test_deterministic() -> None:
    question = "How is search made fast?"
    assert answer_extract(question=question, passages=PASSAGES) == answer_extract(
        question=question, passages=list(PASSAGES)
    )
