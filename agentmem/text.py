"""Deterministic text helpers for the offline memory builders.

Sentence splitting, content words, keywords, an informativeness score that tells a fact
("I moved to Denver in May") from filler ("Oh really?"), and extractive selection of
sentences by centrality with diversity (maximal marginal relevance). No model, no data
download: what these lose against a capable model is documented by each structure.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

#: A sentence ends at . ! or ?, but not after a title before a name ("Ms. Tan", "Dr. Okafor").
_SENTENCE_END = re.compile(
    r"(?<!\bMr\.)(?<!\bMs\.)(?<!\bMrs\.)(?<!\bDr\.)(?<!\bSt\.)(?<!\bMt\.)(?<!\bProf\.)"
    r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])"
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*|\d+(?:[.,:]\d+)*")

STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "aren't",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "can't",
        "cannot",
        "could",
        "couldn't",
        "did",
        "didn't",
        "do",
        "does",
        "doesn't",
        "doing",
        "don't",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "hadn't",
        "has",
        "hasn't",
        "have",
        "haven't",
        "having",
        "he",
        "he'd",
        "he'll",
        "he's",
        "her",
        "here",
        "here's",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "how's",
        "i",
        "i'd",
        "i'll",
        "i'm",
        "i've",
        "if",
        "in",
        "into",
        "is",
        "isn't",
        "it",
        "it's",
        "its",
        "itself",
        "let's",
        "me",
        "more",
        "most",
        "mustn't",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "ought",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "shan't",
        "she",
        "she'd",
        "she'll",
        "she's",
        "should",
        "shouldn't",
        "so",
        "some",
        "such",
        "than",
        "that",
        "that's",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "there's",
        "these",
        "they",
        "they'd",
        "they'll",
        "they're",
        "they've",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "wasn't",
        "we",
        "we'd",
        "we'll",
        "we're",
        "we've",
        "were",
        "weren't",
        "what",
        "what's",
        "when",
        "when's",
        "where",
        "where's",
        "which",
        "while",
        "who",
        "who's",
        "whom",
        "why",
        "why's",
        "will",
        "with",
        "won't",
        "would",
        "wouldn't",
        "you",
        "you'd",
        "you'll",
        "you're",
        "you've",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "also",
        "just",
        "really",
        "yeah",
        "yes",
        "oh",
        "ok",
        "okay",
        "sure",
        "well",
        "like",
        "get",
        "got",
        "go",
        "going",
        "gonna",
        "lot",
        "lots",
        "thing",
        "things",
        "stuff",
        "much",
        "many",
        "one",
        "two",
        "still",
        "even",
        "though",
        "sounds",
        "sound",
        "great",
        "good",
        "nice",
        "cool",
        "wow",
        "haha",
        "thanks",
        "thank",
        "hey",
        "hi",
        "hello",
        "know",
        "think",
        "feel",
        "time",
        "day",
        "today",
        "yesterday",
        "tomorrow",
        "now",
    ]
)

_FILLER = re.compile(
    r"^(oh|wow|haha|hmm|ok|okay|sure|yeah|yes|no|nice|cool|great|really|thanks|thank you|"
    r"sounds (fun|good|great|nice)|that's (great|nice|cool|awesome)|me too|same here)\b",
    re.IGNORECASE,
)


def split_sentences(text: str) -> list[str]:
    """Split text into sentences (a light rule-based splitter)."""
    parts = [p.strip() for p in _SENTENCE_END.split(text.strip())]
    return [p for p in parts if p]


def words(text: str) -> list[str]:
    """Return the lower-cased words and numbers of ``text``."""
    return [w.lower().strip("'-") for w in _WORD.findall(text)]


def content_words(text: str) -> list[str]:
    """Return the words of ``text`` that carry content (no stop words, no 1-letter words)."""
    return [w for w in words(text) if len(w) > 1 and w not in STOPWORDS]


def asks_only(text: str) -> bool:
    """Whether every sentence of ``text`` is a question ("Where does my sister live?")."""
    sentences = split_sentences(text)
    return bool(sentences) and all(s.rstrip("\"')”’*_ ").endswith("?") for s in sentences)


def says_nothing(text: str) -> bool:
    """Whether ``text`` holds no content word at all ("Got it.", "Haha yes!")."""
    return not content_words(text)


#: The share of an answer's content words a turn it answers must hold for the answer to
#: be an echo of it, and the most new content words an echo may add.
ECHO_SHARE, ECHO_NEW_WORDS = 0.6, 1


def echoes(text: str, heard: str) -> bool:
    """Whether ``text`` only restates ``heard`` ("Got it, you live in Lisbon.").

    Most of its content words are ``heard``'s and it adds at most
    :data:`ECHO_NEW_WORDS` of its own.
    """
    said = set(content_words(text))
    if not said or not heard:
        return False
    new = said - set(content_words(heard))
    return len(said - new) >= ECHO_SHARE * len(said) and len(new) <= ECHO_NEW_WORDS


def keywords(texts: Iterable[str], k: int = 3) -> list[str]:
    """Return the ``k`` most frequent content words over ``texts`` (ties by first use)."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(dict.fromkeys(content_words(text), 1))
    return [word for word, _ in counts.most_common(k)]


def proper_nouns(text: str) -> list[str]:
    """Return capitalised words that do not start a sentence (a cheap name detector)."""
    found = []
    for sentence in split_sentences(text):
        tokens = sentence.split()
        for token in tokens[1:]:
            clean = token.strip(".,!?;:\"'()[]")
            if clean[:1].isupper() and clean.lower() not in STOPWORDS and len(clean) > 1:
                found.append(clean)
    return found


# Memoised: the summaries, their digests, the memos and the tree each score the same
# sentences of a turn (7,320 calls for 419 turns of a LoCoMo conversation under `all`).
@lru_cache(maxsize=8192)
def informativeness(sentence: str) -> float:
    """Score how much a sentence states (facts, names, numbers) rather than reacts.

    Returns 0 for filler such as "Oh really?" or "Sounds fun.", more for sentences with
    content words, names, numbers and first-person statements.
    """
    content = content_words(sentence)
    if not content:
        return 0.0
    score = float(len(set(content)))
    if _FILLER.match(sentence.strip()) and len(content) <= 2:
        score *= 0.2
    if sentence.rstrip().endswith("?"):
        score *= 0.5  # questions ask rather than state
    score += 1.5 * len(proper_nouns(sentence))
    score += 1.0 * sum(w.isdigit() for w in words(sentence))
    if re.search(r"\b(i|my|i'm|i've|we|our)\b", sentence, re.IGNORECASE):
        score += 1.0
    return score


def select_central(
    embeddings: np.ndarray,
    k: int,
    *,
    weights: Sequence[float] | None = None,
    diversity: float = 0.3,
) -> list[int]:
    """Pick up to ``k`` rows that are central (near the weighted centroid) yet diverse.

    Maximal marginal relevance (Carbonell & Goldstein 1998) over unit-length rows.
    Returns row indices in ascending order (so picked sentences keep their order).
    """
    n = len(embeddings)
    if n == 0 or k <= 0:
        return []
    w = np.ones(n, dtype=np.float32) if weights is None else np.asarray(weights, np.float32)
    centroid = (embeddings * w[:, None]).sum(axis=0)
    norm = float(np.linalg.norm(centroid))
    relevance = embeddings @ (centroid / norm) if norm else np.zeros(n, dtype=np.float32)
    relevance = relevance * (0.5 + 0.5 * w / max(float(w.max()), 1e-9))
    chosen: list[int] = []
    while len(chosen) < min(k, n):
        if chosen:
            redundancy = (embeddings @ embeddings[chosen].T).max(axis=1)
        else:
            redundancy = np.zeros(n, dtype=np.float32)
        scores = (1 - diversity) * relevance - diversity * redundancy
        scores[chosen] = -np.inf
        chosen.append(int(np.argmax(scores)))
    return sorted(chosen)


def truncate_words(text: str, max_words: int) -> str:
    """Cut ``text`` to at most ``max_words`` words, marking a cut with an ellipsis."""
    parts = text.split()
    if len(parts) <= max_words:
        return text
    return " ".join(parts[:max_words]) + " …"
