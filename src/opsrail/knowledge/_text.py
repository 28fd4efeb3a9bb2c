"""Text handling shared by retrieval and summaries: tokens, sentences and plain text from Markdown.

Tokens are lowercase Unicode words with a small English stopword list removed and a light plural/verb-ending
strip, so "assertions" finds "assertion". Identifiers survive whole: ``INV-1234`` gives ``inv-1234`` and also its
parts ``inv`` and ``1234``, so a search for either form finds it; ``SSO`` and ``SAML`` stay as they are (lowercased).
"""

from __future__ import annotations

import re

_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers
    herself him himself his how i if in into is it its itself just me more most my myself nor of off on once only
    or other our ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves also may might must shall us
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

# Words joined by -, _, /, . or : with no space ("INV-1234", "sso_login", "v2.3", "acme:INC-1") are one identifier.
_TOKEN = re.compile(r"\w+(?:[-_./:]\w+)*")
_PART = re.compile(r"[^\W_]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n|\n(?=\s*(?:[-*+]|\d+[.)])\s)")
_MD_NOISE = re.compile(r"\*\*|__|`|^\s*(?:[-*+]|\d+[.)]|>|#{1,6})\s+", re.MULTILINE)
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}.*$", re.MULTILINE)


def _stem(word: str) -> str:
    # Deliberately light (an S-stemmer plus -ing/-ed): aggressive stemming merges words an operator keeps apart
    # ("credit"/"credential"), and identifiers and numbers are never touched.
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) > 5:
        return word[:-3]
    if word.endswith("ed") and len(word) > 4 and not word.endswith("eed"):
        return word[:-2]
    return word


def _word_tokens(word: str) -> tuple[str, ...]:
    if word in STOPWORDS:
        return ()
    parts = _PART.findall(word)
    if len(parts) == 1 and parts[0] == word:
        return (_stem(word),)
    return (word, *(_stem(part) for part in parts if part not in STOPWORDS))


# Word -> tokens, memoised: text repeats a small vocabulary, and this halves the time to index tickets.
_CACHE: dict[str, tuple[str, ...]] = {}
_CACHE_LIMIT = 200_000


def tokenize(text: str) -> list[str]:
    """Search tokens of ``text``, in order, with repeats (see the module docstring for the rules)."""
    tokens: list[str] = []
    cache = _CACHE
    for word in _TOKEN.findall(text.lower()):
        found = cache.get(word)
        if found is None:
            found = _word_tokens(word)
            if len(cache) < _CACHE_LIMIT:
                cache[word] = found
        tokens.extend(found)
    return tokens


def plain(text: str) -> str:
    """Markdown reduced to readable text: no emphasis markers, list bullets, heading hashes or link targets."""
    text = _MD_LINK.sub(r"\1", text)
    text = _TABLE_RULE.sub("", text)
    text = text.replace("|", " ")
    return _MD_NOISE.sub("", text)


def sentences(text: str) -> list[str]:
    """Sentences of ``text`` (Markdown list items and paragraphs count as sentences), whitespace-normalised."""
    out: list[str] = []
    for chunk in _SENTENCE_END.split(text):
        cleaned = " ".join(plain(chunk).split())
        if cleaned:
            out.append(cleaned)
    return out
