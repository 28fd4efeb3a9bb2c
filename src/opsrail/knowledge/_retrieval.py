"""Sparse retrieval: a BM25 index over knowledge documents, and the hits it returns.

Owns ``KnowledgeIndex`` and ``Hit``. The index is an inverted file kept as plain NumPy arrays (term-major CSR:
for each term, the documents holding it and their precomputed BM25 weight), so a query is a gather of a few
posting lists and one ``bincount``: no network, no embedding model, picklable as is. Scores are Okapi BM25 with
the Lucene IDF (never negative); they compare hits within one query, not across queries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from opsrail.knowledge._documents import Document
from opsrail.knowledge._text import sentences, tokenize

SNIPPET_CHARS = 200

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: which document, how well it matched, and the sentence that matched best."""

    id: str
    kind: str
    title: str
    source: str
    score: float
    snippet: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


def _clip(text: str, limit: int = SNIPPET_CHARS) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip(" ,;:") + "…"


class KnowledgeIndex:
    """A BM25 index over documents; build it with ``KnowledgeIndex.build(documents)``.

    ``k1`` and ``b`` are the usual BM25 knobs (term-frequency saturation and length normalisation). Titles are
    indexed with the text, so a section titled "SSO onboarding > SAML errors" matches "saml" even when its body
    only says "assertion".
    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._documents: list[Document] = []
        self._positions: dict[str, int] = {}
        self._vocabulary: dict[str, int] = {}
        self._kind_codes: dict[str, int] = {}
        self._kinds: IntArray = np.zeros(0, dtype=np.int64)
        self._lengths: FloatArray = np.zeros(0)
        self._idf: FloatArray = np.zeros(0)
        # Term-major postings: documents of term t are _doc_ids[_indptr[t]:_indptr[t + 1]].
        self._indptr: IntArray = np.zeros(1, dtype=np.int64)
        self._doc_ids: IntArray = np.zeros(0, dtype=np.int64)
        self._tf: FloatArray = np.zeros(0)
        self._weights: FloatArray = np.zeros(0)
        # Each hit document's sentences with their tokens, split on its first hit: snippets of the same runbooks
        # are cut for query after query.
        self._sentences: dict[int, list[tuple[str, frozenset[str]]]] = {}

    @classmethod
    def build(cls, documents: Iterable[Document], *, k1: float = 1.2, b: float = 0.75) -> KnowledgeIndex:
        """An index over ``documents``; a later document with an id already seen replaces the earlier one."""
        index = cls(k1=k1, b=b)
        index.add(documents)
        return index

    def __len__(self) -> int:
        return len(self._documents)

    def add(self, documents: Iterable[Document]) -> None:
        """Add documents (same id: replace in place) and recompute the weights; only new text is tokenised."""
        incoming = list(documents)
        if not incoming:
            return
        vocabulary = self._vocabulary
        terms = [np.repeat(np.arange(len(self._indptr) - 1, dtype=np.int64), np.diff(self._indptr))]
        doc_ids = [self._doc_ids]
        counts = [self._tf]
        lengths = list(self._lengths)
        replaced: set[int] = set()
        new_terms: list[int] = []
        new_docs: list[int] = []
        new_counts: list[int] = []
        for document in incoming:
            position = self._positions.get(document.id)
            if position is None:
                position = len(self._documents)
                self._positions[document.id] = position
                self._documents.append(document)
                lengths.append(0.0)
            else:
                if position < len(self._lengths):
                    replaced.add(position)
                self._documents[position] = document
                self._sentences.pop(position, None)
                # The same id twice in one batch: drop what the earlier copy contributed.
                keep = [i for i, doc in enumerate(new_docs) if doc != position]
                new_terms = [new_terms[i] for i in keep]
                new_counts = [new_counts[i] for i in keep]
                new_docs = [new_docs[i] for i in keep]
            self._kind_codes.setdefault(document.kind, len(self._kind_codes))
            bag = Counter(tokenize(f"{document.title}\n{document.text}"))
            lengths[position] = float(sum(bag.values()))
            for term, count in bag.items():
                new_terms.append(vocabulary.setdefault(term, len(vocabulary)))
                new_docs.append(position)
                new_counts.append(count)
        if replaced:
            keep_mask = ~np.isin(doc_ids[0], np.fromiter(replaced, dtype=np.int64))
            terms[0], doc_ids[0], counts[0] = terms[0][keep_mask], doc_ids[0][keep_mask], counts[0][keep_mask]
        terms.append(np.asarray(new_terms, dtype=np.int64))
        doc_ids.append(np.asarray(new_docs, dtype=np.int64))
        counts.append(np.asarray(new_counts, dtype=np.float64))
        self._lengths = np.asarray(lengths, dtype=np.float64)
        self._kinds = np.fromiter((self._kind_codes[d.kind] for d in self._documents), dtype=np.int64)
        self._reweigh(np.concatenate(terms), np.concatenate(doc_ids), np.concatenate(counts))

    def _reweigh(self, terms: IntArray, doc_ids: IntArray, counts: FloatArray) -> None:
        n_docs, n_terms = len(self._documents), len(self._vocabulary)
        import scipy.sparse as sp  # loaded with the first index built, not with every CLI command

        matrix = sp.csr_matrix((counts, (terms, doc_ids)), shape=(n_terms, n_docs))
        matrix.sort_indices()
        self._indptr = matrix.indptr.astype(np.int64)
        self._doc_ids = matrix.indices.astype(np.int64)
        self._tf = matrix.data.astype(np.float64)
        df = np.diff(self._indptr).astype(np.float64)
        self._idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
        average = float(self._lengths.mean()) if n_docs else 1.0
        norm = self.k1 * (1.0 - self.b + self.b * self._lengths / max(average, 1e-9))
        term_of_entry = np.repeat(np.arange(n_terms, dtype=np.int64), np.diff(self._indptr))
        tf = self._tf
        self._weights = self._idf[term_of_entry] * tf * (self.k1 + 1.0) / (tf + norm[self._doc_ids])

    def _query_terms(self, query: str) -> list[int]:
        seen: dict[int, None] = {}
        for token in tokenize(query):
            term = self._vocabulary.get(token)
            if term is not None:
                seen[term] = None
        return list(seen)

    def scores(self, query: str) -> FloatArray:
        """BM25 score of every document for ``query``, in insertion order (zero where no query term occurs)."""
        scores = np.zeros(len(self._documents))
        terms = self._query_terms(query)
        if not terms:
            return scores
        # Each distinct query term counts once: long queries (a whole ticket as the query) would otherwise be
        # dominated by the words their author happened to repeat.
        spans = [(int(self._indptr[t]), int(self._indptr[t + 1])) for t in terms]
        if len(spans) == 1:
            start, stop = spans[0]
            scores[self._doc_ids[start:stop]] = self._weights[start:stop]
            return scores
        ids = np.concatenate([self._doc_ids[a:b] for a, b in spans])
        weights = np.concatenate([self._weights[a:b] for a, b in spans])
        return np.bincount(ids, weights=weights, minlength=len(self._documents)).astype(np.float64)

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        kinds: Collection[str] | None = None,
        exclude_ids: Collection[str] = (),
    ) -> list[Hit]:
        """The ``k`` best documents for ``query``, best first; equal scores keep insertion order.

        ``kinds`` keeps only documents of those kinds; ``exclude_ids`` drops those documents (the case being
        summarised, say). Only documents sharing at least one term with the query are returned, so the list may be
        shorter than ``k``; an empty query or an empty index gives ``[]``.
        """
        if k <= 0 or not self._documents or not query.strip():
            return []
        scores = self.scores(query)
        if kinds is not None:
            codes = [self._kind_codes[kind] for kind in kinds if kind in self._kind_codes]
            scores[~np.isin(self._kinds, np.asarray(codes, dtype=np.int64))] = 0.0
        for excluded in exclude_ids:
            position = self._positions.get(excluded)
            if position is not None:
                scores[position] = 0.0
        candidates = np.flatnonzero(scores > 0.0)
        if len(candidates) > k:
            # Partition first (cheap), then keep everything tied with the k-th score so ties resolve by position.
            threshold = np.partition(scores[candidates], len(candidates) - k)[len(candidates) - k]
            candidates = candidates[scores[candidates] >= threshold]
        order = candidates[np.lexsort((candidates, -scores[candidates]))][:k]
        query_terms = set(tokenize(query))
        return [self._hit(int(position), float(scores[position]), query_terms) for position in order]

    def _hit(self, position: int, score: float, query_terms: set[str]) -> Hit:
        document = self._documents[position]
        return Hit(
            id=document.id,
            kind=document.kind,
            title=document.title,
            source=document.source,
            score=score,
            snippet=self._snippet(position, query_terms),
            metadata=document.metadata,
        )

    def _idf_of(self, token: str) -> float:
        term = self._vocabulary.get(token)
        return float(self._idf[term]) if term is not None else 0.0

    def _snippet(self, position: int, query_terms: set[str]) -> str:
        text = self._documents[position].text
        split = self._sentences.get(position)
        if split is None:
            split = self._sentences[position] = [(s, frozenset(tokenize(s))) for s in sentences(text)]
        best, best_score = "", 0.0
        for sentence, tokens in split:
            score = sum(self._idf_of(token) for token in tokens & query_terms)
            if score > best_score:
                best, best_score = sentence, score
        if not best:
            return _clip(" ".join(text.split()))
        if len(best) > SNIPPET_CHARS:
            # A long run-on sentence (tickets often have no punctuation): start near the first matching word.
            lowered = best.lower()
            starts = [lowered.find(term) for term in query_terms if term.isalnum() and term in lowered]
            start = min(starts, default=0)
            if start > SNIPPET_CHARS // 3:
                space = best.rfind(" ", 0, start - 40)
                best = "…" + best[space + 1 :] if space > 0 else best
        return _clip(best)
