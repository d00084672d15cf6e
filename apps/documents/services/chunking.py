"""Split parsed document text into chunks that fit the embedding model.

``text_chunk`` cuts text (as produced by ``parsing.document_parse``: paragraphs
separated by blank lines, Markdown ``#`` heading lines) into chunks of at most
``max_tokens`` tokens of the embedding model's tokenizer, because the model
silently truncates longer input and the cut-off tail would never be found.

How it cuts, in order of preference:

1. At headings (``parsing.markdown_heading``): a heading of the same or a
   higher level than the current section's starts a new chunk, unless the
   chunk so far is tiny.
2. Between paragraphs: whole paragraphs are packed greedily.
3. Between sentences (and lines) of a paragraph too long for one chunk.
4. Between tokens of a sentence too long for one chunk.

Cuts of kinds 3 and 4 separate text that belongs together, so the chunk after
such a cut repeats up to ``overlap_tokens`` tokens of the one before it.

Every chunk records its character offsets in the original text, and the
heading path (``("Guide", "Install")``) in force at its first character, so
search results can point at and be titled by the section they come from.
"""

import bisect
import dataclasses
import re
import unicodedata

from tokenizers import Encoding

from apps.documents.services.parsing import markdown_heading
from apps.documents.services.tokenizer import MODEL_MAX_TOKENS, embedding_tokenizer

MIN_CHUNK_TOKENS = 16
# Sentences longer than this many characters are tokenized in pieces: the
# tokenizer is several times slower per character on one long input.
_SEGMENT_MAX_CHARS = 2000

_FENCE = re.compile(r" {0,3}(?:```|~~~)")
# Where a sentence ends: after terminal punctuation (and closing quotes or
# brackets) followed by whitespace, after CJK full stops (which need no space),
# or at a line break inside a paragraph (lists, verse, code).
# The lookbehind starts a match only at the first mark of a run: a run of marks
# not followed by whitespace ("." * n) would otherwise be rescanned from each of
# its positions, in time quadratic in its length.
_SENTENCE_BREAK = re.compile(r"""(?<![.!?…])[.!?…]+["'”’)\]]*\s+|[。！？]+["'”’)\]」』]*\s*|\n\s*""")


@dataclasses.dataclass(frozen=True)
class ChunkSpec:
    """One chunk of a document, ready to embed.

    ``text == document_text[char_start:char_end]``. ``token_count`` excludes
    the model's [CLS]/[SEP] tokens. ``heading_path`` is a tuple rather than a
    list so that the frozen dataclass stays hashable; ``list()`` it to store it
    as JSON.
    """

    ordinal: int
    text: str
    token_count: int
    char_start: int
    char_end: int
    heading_path: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class _Block:
    """A heading line or a paragraph, by offsets stripped of surrounding whitespace."""

    start: int
    end: int
    heading_level: int  # 0 for a paragraph
    heading_path: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class _Unit:
    """The smallest piece the packer places: a whole block, or a sentence or
    token run of a block too long for one chunk."""

    start: int
    end: int
    tokens: int
    block: int  # index into the block list
    # For pieces of a split block: the block's tokens, for computing overlap.
    block_tokens: "_BlockTokens | None" = None


@dataclasses.dataclass(frozen=True)
class _BlockTokens:
    starts: list[int]  # absolute character offset where each token starts
    word_starts: list[bool]  # False for WordPiece continuations ("##ing")


def text_chunk(*, text: str, max_tokens: int = 200, overlap_tokens: int = 32) -> list[ChunkSpec]:
    """Split ``text`` into chunks of at most ``max_tokens`` tokens.

    See the module docstring for where chunks are cut. Raises ``ValueError``
    when ``max_tokens`` is not in [16, MODEL_MAX_TOKENS - 2] or
    ``overlap_tokens`` is not in [0, max_tokens // 2).
    """
    _parameters_check(max_tokens=max_tokens, overlap_tokens=overlap_tokens)
    blocks = _blocks_split(text=text)
    if not blocks:
        return []

    units = _units_build(text=text, blocks=blocks, max_tokens=max_tokens, overlap_tokens=overlap_tokens)
    spans = _units_pack(units=units, blocks=blocks, max_tokens=max_tokens, overlap_tokens=overlap_tokens)

    # Packing adds up the counts of the pieces, which is the count of the
    # joined text when pieces meet where the tokenizer splits anyway. A piece
    # that starts inside a word re-tokenizes differently ("##ing" becomes
    # "ing"), so count every chunk as the model will see it, and re-cut the
    # rare chunk that comes out too long.
    encodings = embedding_tokenizer().encode_batch_fast([text[s:e] for s, e in spans], add_special_tokens=False)
    block_starts = [block.start for block in blocks]
    chunks: list[ChunkSpec] = []
    for (start, end), encoding in zip(spans, encodings, strict=True):
        if len(encoding) <= max_tokens:
            pieces = [(start, end, len(encoding))]
        else:
            pieces = _span_split(text=text, start=start, end=end, max_tokens=max_tokens)
        for piece_start, piece_end, piece_count in pieces:
            # The block holding the chunk's first character gives its path.
            block = blocks[bisect.bisect_right(block_starts, piece_start) - 1]
            chunks.append(
                ChunkSpec(
                    ordinal=len(chunks),
                    text=text[piece_start:piece_end],
                    token_count=piece_count,
                    char_start=piece_start,
                    char_end=piece_end,
                    heading_path=block.heading_path,
                )
            )
    return chunks


def _parameters_check(*, max_tokens: int, overlap_tokens: int) -> None:
    # The model adds [CLS] and [SEP] to every input.
    max_allowed = MODEL_MAX_TOKENS - 2
    if not MIN_CHUNK_TOKENS <= max_tokens <= max_allowed:
        raise ValueError(f"max_tokens must be between {MIN_CHUNK_TOKENS} and {max_allowed}, got {max_tokens}")
    # An overlap of half a chunk or more would let chunks mostly repeat each other.
    if not 0 <= overlap_tokens < max_tokens // 2:
        raise ValueError(
            f"overlap_tokens must be at least 0 and less than max_tokens // 2 ({max_tokens // 2}), got {overlap_tokens}"
        )


def _blocks_split(*, text: str) -> list[_Block]:
    """Cut ``text`` into heading lines and paragraphs, each with its heading path."""
    blocks: list[_Block] = []
    path: list[tuple[int, str]] = []  # (level, title) of the headings in force
    paragraph: list[int] = []  # [start, end] of the paragraph being collected
    in_fence = False

    def paragraph_flush() -> None:
        if paragraph:
            blocks.append(_Block(paragraph[0], paragraph[1], 0, tuple(title for _, title in path)))
            paragraph.clear()

    line_start = 0
    for line in text.split("\n"):
        line_end = line_start + len(line)
        content = line.strip()
        if not content:
            paragraph_flush()
        elif not in_fence and (heading := markdown_heading(line=line)):
            paragraph_flush()
            level, title = heading
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, title))
            heading_path = tuple(title for _, title in path)
            blocks.append(_Block(line_start, line_start + len(line.rstrip()), level, heading_path))
        else:
            if _FENCE.match(line):
                in_fence = not in_fence
            content_start = line_start + len(line) - len(line.lstrip())
            content_end = line_start + len(line.rstrip())
            if paragraph:
                paragraph[1] = content_end
            else:
                paragraph.extend((content_start, content_end))
        line_start = line_end + 1
    paragraph_flush()
    return blocks


def _units_build(*, text: str, blocks: list[_Block], max_tokens: int, overlap_tokens: int) -> list[_Unit]:
    """Turn blocks into units no longer than ``max_tokens``, splitting the blocks that are longer."""
    segments = [_segments_split(text=text, block=block) for block in blocks]
    # Tokenize every segment once, in one batch that runs in parallel, rather
    # than per block or, worse, per candidate chunk.
    encodings = iter(
        embedding_tokenizer().encode_batch(
            [text[start:end] for block_segments in segments for start, end in block_segments],
            add_special_tokens=False,
        )
    )

    units: list[_Unit] = []
    for index, (block, block_segments) in enumerate(zip(blocks, segments, strict=True)):
        block_encodings = [next(encodings) for _ in block_segments]
        # Segments meet where the tokenizer splits anyway (but for the rare
        # forced cut, see _cut_find), so the block's count is their sum.
        count = sum(len(encoding) for encoding in block_encodings)
        if count <= max_tokens:
            units.append(_Unit(block.start, block.end, count, index))
        else:
            units.extend(
                _block_split(
                    index=index,
                    segments=block_segments,
                    encodings=block_encodings,
                    max_tokens=max_tokens,
                    overlap_tokens=overlap_tokens,
                )
            )
    return units


def _segments_split(*, text: str, block: _Block) -> list[tuple[int, int]]:
    """Cut a block into sentences, and sentences into pieces of at most _SEGMENT_MAX_CHARS."""
    if block.heading_level:
        return [(block.start, block.end)]
    breaks = [match.end() for match in _SENTENCE_BREAK.finditer(text, block.start, block.end)]
    segments: list[tuple[int, int]] = []
    start = block.start
    for end in [*breaks, block.end]:
        while end - start > _SEGMENT_MAX_CHARS:
            cut = _cut_find(text=text, start=start, end=start + _SEGMENT_MAX_CHARS)
            segments.append((start, cut))
            start = cut
        if end > start:
            segments.append((start, end))
        start = end
    return segments


def _cut_find(*, text: str, start: int, end: int) -> int:
    """Where to cut ``text[start:end]`` so that no token straddles the cut, if possible.

    After whitespace, punctuation or a CJK ideograph the tokenizer always starts
    a new token. Without one in the second half, cut at ``end``: a word that
    long is a single [UNK] token, or the text is not language, and the exact
    count of each chunk is checked in the end anyway.
    """
    for cut in range(end, start + (end - start) // 2, -1):
        char = text[cut - 1]
        if char.isspace() or "\u4e00" <= char <= "\u9fff" or unicodedata.category(char).startswith("P"):
            return cut
    return end


def _block_split(
    *, index: int, segments: list[tuple[int, int]], encodings: list[Encoding], max_tokens: int, overlap_tokens: int
) -> list[_Unit]:
    """Split an oversized block into its sentences, and oversized sentences between tokens."""
    starts: list[int] = []
    ends: list[int] = []
    word_starts: list[bool] = []
    bounds: list[tuple[int, int]] = []  # each segment's range of token indexes
    for (segment_start, _), encoding in zip(segments, encodings, strict=True):
        first = len(starts)
        starts.extend([segment_start + start for start, _ in encoding.offsets])
        ends.extend([segment_start + end for _, end in encoding.offsets])
        word_starts.extend([not token.startswith("##") for token in encoding.tokens])
        bounds.append((first, len(starts)))
    block_tokens = _BlockTokens(starts=starts, word_starts=word_starts)

    units: list[_Unit] = []
    # Leave room for the overlap the next chunk will start with, so that a
    # sentence cut between tokens does not also lose its overlap.
    window = max_tokens - overlap_tokens
    for first, last in bounds:
        if first == last:
            continue  # whitespace, or characters the tokenizer drops
        if last - first <= max_tokens:
            units.append(_Unit(starts[first], ends[last - 1], last - first, index, block_tokens))
            continue
        while first < last:
            cut = min(first + window, last)
            # Prefer cutting before a whole word rather than inside one, when
            # that does not make the piece much shorter.
            if cut < last and not word_starts[cut]:
                word_cut = cut
                while word_cut > first + window // 2 and not word_starts[word_cut]:
                    word_cut -= 1
                if word_starts[word_cut]:
                    cut = word_cut
            units.append(_Unit(starts[first], ends[cut - 1], cut - first, index, block_tokens))
            first = cut
    return units


def _units_pack(
    *, units: list[_Unit], blocks: list[_Block], max_tokens: int, overlap_tokens: int
) -> list[tuple[int, int]]:
    """Pack units greedily into chunks; return each chunk's (start, end) offsets."""
    spans: list[tuple[int, int]] = []
    current: list[_Unit] = []
    current_start = 0  # before current[0].start when the chunk opens with overlap
    current_tokens = 0
    # Level of the innermost heading so far; 7, deeper than any heading, means
    # none yet, so that the first heading ends the preamble's chunk.
    section_level = 7

    for unit in units:
        level = blocks[unit.block].heading_level
        starts_section = 0 < level <= section_level
        if level:
            section_level = level

        if current and starts_section and current_tokens * 4 >= max_tokens:
            spans.append((current_start, current[-1].end))
            current = []
        elif current and current_tokens + unit.tokens > max_tokens:
            # A heading at the very end of a chunk belongs with the text under
            # it, if the two fit together.
            carried = _headings_trailing(units=current, blocks=blocks)
            carried_tokens = sum(u.tokens for u in carried)
            if carried_tokens + unit.tokens > max_tokens:
                carried, carried_tokens = [], 0
            kept = current[: len(current) - len(carried)]
            spans.append((current_start, kept[-1].end))

            if carried:
                current, current_start, current_tokens = carried, carried[0].start, carried_tokens
            elif kept[-1].block == unit.block and unit.block_tokens is not None:
                current_start, current_tokens = _overlap_find(
                    unit=unit,
                    previous_end=kept[-1].end,
                    previous_chunk_start=spans[-1][0],
                    budget=min(overlap_tokens, max_tokens - unit.tokens),
                )
                current = []
            else:
                current, current_start, current_tokens = [], unit.start, 0
            current.append(unit)
            current_tokens += unit.tokens
            continue

        if not current:
            current_start, current_tokens = unit.start, 0
        current.append(unit)
        current_tokens += unit.tokens

    if current:
        spans.append((current_start, current[-1].end))
    return spans


def _headings_trailing(*, units: list[_Unit], blocks: list[_Block]) -> list[_Unit]:
    """The heading units that end ``units``, if some text comes before them."""
    for index in range(len(units) - 1, -1, -1):
        if not blocks[units[index].block].heading_level:
            return units[index + 1 :]
    return []


def _overlap_find(*, unit: _Unit, previous_end: int, previous_chunk_start: int, budget: int) -> tuple[int, int]:
    """Where a chunk continuing a split block starts, to repeat the previous chunk's tail.

    Returns the start offset and the number of overlap tokens.
    """
    tokens = unit.block_tokens
    assert tokens is not None
    end = bisect.bisect_left(tokens.starts, previous_end)
    low = max(bisect.bisect_left(tokens.starts, previous_chunk_start), end - budget)
    # Start on a whole word where possible; a lone "##ing" reads as noise.
    first = low
    while first < end and not tokens.word_starts[first]:
        first += 1
    if first == end:
        first = low
    if first >= end:
        return unit.start, 0
    return tokens.starts[first], end - first


def _span_split(*, text: str, start: int, end: int, max_tokens: int) -> list[tuple[int, int, int]]:
    """Cut ``text[start:end]`` into pieces of at most ``max_tokens`` tokens, each counted exactly.

    The fallback for a chunk whose exact count came out over the limit.
    """
    tokenizer = embedding_tokenizer()
    offsets = tokenizer.encode(text[start:end], add_special_tokens=False).offsets
    pieces: list[tuple[int, int, int]] = []
    first = 0
    while first < len(offsets):
        cut = min(first + max_tokens, len(offsets))
        while True:
            piece_start, piece_end = start + offsets[first][0], start + offsets[cut - 1][1]
            count = len(tokenizer.encode(text[piece_start:piece_end], add_special_tokens=False).ids)
            if count <= max_tokens:
                pieces.append((piece_start, piece_end, count))
                break
            if cut - first == 1 and piece_end - piece_start > 1:
                # One token's text that re-tokenizes into too many tokens:
                # unheard of, but halve it by characters rather than emit it.
                middle = (piece_start + piece_end) // 2
                pieces.extend(_span_split(text=text, start=piece_start, end=middle, max_tokens=max_tokens))
                pieces.extend(_span_split(text=text, start=middle, end=piece_end, max_tokens=max_tokens))
                break
            cut = max(first + 1, cut - (count - max_tokens))
        first = cut
    return pieces
