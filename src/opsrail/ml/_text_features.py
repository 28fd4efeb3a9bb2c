"""Ticket text to sparse features: word 1-2-gram TF-IDF next to character n-gram TF-IDF.

Character n-grams catch spelling variants, truncated words and compounds the word vocabulary misses. Counting them
per document is the slow part of a usual ``char_wb`` vectoriser (tens of millions of Python strings for a few
tens of thousands of tickets), but help-desk text reuses a small vocabulary: the n-grams of a document are the sum
of the n-grams of its words. So each distinct word is broken into n-grams once, and a document's character counts
are its word counts multiplied by that word-to-n-gram matrix. Words first seen at prediction time are broken up on
the fly (n-grams outside the fitted vocabulary are dropped, as a vectoriser would).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

_TOKEN = re.compile(r"\w\w+")
"""Word tokens of two characters or more: one-letter tokens carry no topic."""
_FLOAT = np.float32


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens; one-letter tokens carry no topic and are dropped."""
    tokens_: list[str] = _TOKEN.findall(text.lower())
    return tokens_


def _char_grams(word: str, low: int, high: int) -> list[str]:
    padded = f" {word} "
    grams: list[str] = []
    for n in range(low, high + 1):
        if n > len(padded):
            break
        grams.extend(padded[i : i + n] for i in range(len(padded) - n + 1))
    return grams


def _tfidf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Sublinear term frequency (1 + log tf) times idf, rows scaled to unit length."""
    out = counts.astype(_FLOAT, copy=True)
    np.log(out.data, out=out.data)
    out.data += 1.0
    out = out @ sp.diags(idf.astype(_FLOAT))
    norms = np.sqrt(np.asarray(out.multiply(out).sum(axis=1)).ravel())
    norms[norms == 0.0] = 1.0
    return sp.csr_matrix(sp.diags((1.0 / norms).astype(_FLOAT)) @ out)


def _idf(counts: sp.csr_matrix) -> np.ndarray:
    """Smoothed inverse document frequency, as the usual TF-IDF vectorisers compute it."""
    n_docs = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    result: np.ndarray = (np.log((1.0 + n_docs) / (1.0 + df)) + 1.0).astype(_FLOAT)
    return result


class TextFeatures:
    """Fitted vocabularies and idf weights; ``transform`` turns texts into one CSR matrix (word block, char block).

    Plain attributes only, so the object pickles with the model.
    """

    def __init__(self, *, min_df: int = 2, char_range: tuple[int, int] = (2, 5), use_chars: bool = True) -> None:
        self.min_df = min_df
        self.char_range = char_range
        self.use_chars = use_chars
        self.word_vocabulary: dict[str, int] = {}
        self.word_names: list[str] = []
        self.word_idf = np.zeros(0, dtype=_FLOAT)
        self.char_vocabulary: dict[str, int] = {}
        self.char_names: list[str] = []
        self.char_idf = np.zeros(0, dtype=_FLOAT)
        # Distinct words seen in training (including rare ones) and their rows of the word-to-n-gram matrix.
        self.spell_index: dict[str, int] = {}
        self.spellings = sp.csr_matrix((0, 0), dtype=_FLOAT)

    @property
    def n_features(self) -> int:
        return len(self.word_vocabulary) + len(self.char_vocabulary)

    @staticmethod
    def _terms(words: list[str]) -> list[str]:
        return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]

    def fit_transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        docs = [tokens(text) for text in texts]
        # Word unigrams and bigrams kept when they occur in at least ``min_df`` documents.
        doc_freq: dict[str, int] = {}
        for words in docs:
            for term in set(self._terms(words)):
                doc_freq[term] = doc_freq.get(term, 0) + 1
        floor = self.min_df if len(docs) >= 10 * self.min_df else 1
        kept = sorted(term for term, count in doc_freq.items() if count >= floor)
        self.word_vocabulary = {term: i for i, term in enumerate(kept)}
        self.word_names = kept
        word_counts = self._word_counts(docs)
        self.word_idf = _idf(word_counts)
        blocks = [_tfidf(word_counts, self.word_idf)]
        if self.use_chars:
            spelled = sorted({word for words in docs for word in words})
            self.spell_index = {word: i for i, word in enumerate(spelled)}
            grams_of = [_char_grams(word, *self.char_range) for word in spelled]
            spell_counts = self._spell_counts(docs, self.spell_index)
            # Document frequency of an n-gram = documents holding any word that contains it.
            vocabulary: dict[str, int] = {}
            rows, cols = [], []
            for row, grams in enumerate(grams_of):
                for gram in grams:
                    rows.append(row)
                    cols.append(vocabulary.setdefault(gram, len(vocabulary)))
            full = sp.csr_matrix(
                (np.ones(len(rows), dtype=_FLOAT), (rows, cols)), shape=(len(spelled), len(vocabulary))
            )
            char_counts = sp.csr_matrix(spell_counts @ full)
            df = np.bincount(char_counts.indices, minlength=char_counts.shape[1])
            keep = np.flatnonzero(df >= floor)
            names = list(vocabulary)
            self.char_names = [names[j] for j in keep]
            self.char_vocabulary = {gram: i for i, gram in enumerate(self.char_names)}
            self.spellings = sp.csr_matrix(full[:, keep])
            char_counts = sp.csr_matrix(char_counts[:, keep])
            self.char_idf = _idf(char_counts)
            blocks.append(_tfidf(char_counts, self.char_idf))
        return sp.csr_matrix(sp.hstack(blocks, format="csr"))

    def _word_counts(self, docs: list[list[str]]) -> sp.csr_matrix:
        vocabulary = self.word_vocabulary
        indptr, indices = [0], list[int]()
        for words in docs:
            indices.extend(vocabulary[term] for term in self._terms(words) if term in vocabulary)
            indptr.append(len(indices))
        data = np.ones(len(indices), dtype=_FLOAT)
        counts = sp.csr_matrix((data, indices, indptr), shape=(len(docs), len(vocabulary)))
        counts.sum_duplicates()
        return counts

    @staticmethod
    def _spell_counts(docs: list[list[str]], index: dict[str, int]) -> sp.csr_matrix:
        indptr, indices = [0], list[int]()
        for words in docs:
            indices.extend(index[word] for word in words)
            indptr.append(len(indices))
        data = np.ones(len(indices), dtype=_FLOAT)
        counts = sp.csr_matrix((data, indices, indptr), shape=(len(docs), len(index)))
        counts.sum_duplicates()
        return counts

    def _unseen_spellings(self, words: list[str]) -> sp.csr_matrix:
        """Rows of the word-to-n-gram matrix for words not seen in training."""
        rows, cols = [], []
        for row, word in enumerate(words):
            for gram in _char_grams(word, *self.char_range):
                col = self.char_vocabulary.get(gram)
                if col is not None:
                    rows.append(row)
                    cols.append(col)
        return sp.csr_matrix(
            (np.ones(len(rows), dtype=_FLOAT), (rows, cols)), shape=(len(words), len(self.char_vocabulary))
        )

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        docs = [tokens(text) for text in texts]
        blocks = [_tfidf(self._word_counts(docs), self.word_idf)]
        if self.use_chars:
            known = [[word for word in words if word in self.spell_index] for words in docs]
            char_counts = sp.csr_matrix(self._spell_counts(known, self.spell_index) @ self.spellings)
            unseen = sorted({word for words in docs for word in words if word not in self.spell_index})
            if unseen:
                # Words never seen in training: count their n-grams directly instead of growing the matrix.
                index = {word: i for i, word in enumerate(unseen)}
                rest = [[word for word in words if word in index] for words in docs]
                char_counts = char_counts + sp.csr_matrix(
                    self._spell_counts(rest, index) @ self._unseen_spellings(unseen)
                )
            blocks.append(_tfidf(sp.csr_matrix(char_counts), self.char_idf))
        return sp.csr_matrix(sp.hstack(blocks, format="csr"))

    def vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """One text as (column indices, values) of its feature row, without building sparse matrices.

        The per-ticket path of ``predict``: the same numbers as ``transform([text])``, in a fraction of the time.
        Lookups run as comprehensions and the n-gram rows of known words are gathered with one vectorised index,
        once per distinct word and weighted by its count, so the cost per word stays small on long tickets (the
        latency tail), which repeat their words.
        """
        words = tokens(text)
        word_get = self.word_vocabulary.get
        found = [col for col in map(word_get, self._terms(words)) if col is not None]
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        if found:
            columns, counts = np.unique(np.array(found, dtype=np.int64), return_counts=True)
            parts.append(self._weigh_arrays(columns, counts.astype(np.float64), self.word_idf, 0))
        else:
            parts.append(self._weigh({}, self.word_idf, 0))
        if self.use_chars:
            spellings = self.spellings
            indptr, indices, data = spellings.indptr, spellings.indices, spellings.data
            distinct = Counter(words)
            rows = list(map(self.spell_index.get, distinct))
            known_rows = [row for row in rows if row is not None]
            gram_cols: list[np.ndarray] = []
            gram_counts: list[np.ndarray] = []
            if known_rows:
                known = np.array(known_rows, dtype=np.int64)
                times = np.fromiter(
                    (n for n, row in zip(distinct.values(), rows, strict=True) if row is not None),
                    dtype=np.float64,
                    count=len(known_rows),
                )
                # Every known word's slice of the CSR arrays, gathered in one index: start of each slice repeated
                # over its length, plus the position inside it; each n-gram count times the word's count.
                starts = indptr[known].astype(np.int64)
                lengths = indptr[known + 1].astype(np.int64) - starts
                total = int(lengths.sum())
                first = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
                gather = first + np.arange(total, dtype=np.int64)
                gram_cols.append(indices[gather].astype(np.int64))
                gram_counts.append(data[gather].astype(np.float64) * np.repeat(times, lengths))
            unseen: dict[int, float] = {}
            for (word, n), row in zip(distinct.items(), rows, strict=True):
                if row is not None:
                    continue
                for gram in _char_grams(word, *self.char_range):
                    col = self.char_vocabulary.get(gram)
                    if col is not None:
                        unseen[col] = unseen.get(col, 0.0) + n
            if unseen:
                gram_cols.append(np.fromiter(unseen.keys(), dtype=np.int64, count=len(unseen)))
                gram_counts.append(np.fromiter(unseen.values(), dtype=np.float64, count=len(unseen)))
            if gram_cols:
                columns, where = np.unique(np.concatenate(gram_cols), return_inverse=True)
                sums = np.bincount(where, weights=np.concatenate(gram_counts))
                parts.append(self._weigh_arrays(columns, sums, self.char_idf, len(self.word_vocabulary)))
            else:
                parts.append(self._weigh({}, self.char_idf, len(self.word_vocabulary)))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    @staticmethod
    def _weigh(counts: dict[int, float], idf: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
        cols = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        raw = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        return TextFeatures._weigh_arrays(cols, raw, idf, offset)

    @staticmethod
    def _weigh_arrays(cols: np.ndarray, raw: np.ndarray, idf: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
        """Sublinear tf times idf, L2-normalised: the same weighting as the batch path."""
        cols = cols.astype(np.int64, copy=False)
        values = (np.log(raw.astype(_FLOAT, copy=False)) + 1.0) * idf[cols]
        norm = float(np.sqrt(values @ values)) if len(values) else 0.0
        if norm > 0.0:
            values /= norm
        return cols + offset, values.astype(_FLOAT)

    def feature_name(self, column: int) -> str:
        """The term behind a column (character n-grams shown in quotes, padded with spaces at word edges)."""
        if column < len(self.word_names):
            return self.word_names[column]
        return repr(self.char_names[column - len(self.word_names)])
