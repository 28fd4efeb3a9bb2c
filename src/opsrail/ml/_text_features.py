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
from array import array
from collections import Counter, defaultdict
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


def _row_slices(indptr: np.ndarray, chunk: int) -> list[tuple[int, int]]:
    """Consecutive row ranges ``[first, last)`` of a CSR matrix holding about ``chunk`` stored values each; a row is
    never split, and together the ranges cover every row."""
    cuts = np.searchsorted(indptr, np.arange(0, int(indptr[-1]), chunk), side="right") - 1
    bounds = np.unique(np.concatenate([[0], cuts, [len(indptr) - 1]]))
    return list(itertools.pairwise(bounds.tolist()))


def _tfidf(counts: sp.csr_matrix, idf: np.ndarray, *, chunk: int = 1 << 21) -> sp.csr_matrix:
    """Sublinear term frequency (1 + log tf) times idf, rows scaled to unit length.

    Works in place on ``counts`` (the callers hand over a matrix they no longer need), a slice of about ``chunk``
    stored values at a time: the character block of a few tens of thousands of tickets is about 150 MB, and every
    full-size temporary (the idf of each value, its square, each row's scale) would add as much to the peak.
    """
    out = counts if counts.dtype == _FLOAT else counts.astype(_FLOAT)
    data, indices, indptr = out.data, out.indices, out.indptr
    idf = idf.astype(_FLOAT, copy=False)
    for first, last in _row_slices(indptr, chunk):
        start, stop = int(indptr[first]), int(indptr[last])
        values = data[start:stop]
        np.log(values, out=values)
        values += 1.0
        values *= idf[indices[start:stop]]
        lengths = np.diff(indptr[first : last + 1])
        filled = np.flatnonzero(lengths)
        # Each row's sum of squares in stored order (as ``sum(axis=1)`` of a CSR matrix adds them).
        sums = np.zeros(last - first, dtype=_FLOAT)
        if len(filled):
            sums[filled] = np.add.reduceat(values * values, (indptr[first:last] - start)[filled])
        norms = np.sqrt(sums)
        norms[norms == 0.0] = 1.0
        values *= np.repeat((1.0 / norms).astype(_FLOAT), lengths)
    return out


def _idf(counts: sp.csr_matrix) -> np.ndarray:
    """Smoothed inverse document frequency, as the usual TF-IDF vectorisers compute it."""
    n_docs = counts.shape[0]
    df = _column_counts(counts.indices, counts.shape[1])
    result: np.ndarray = (np.log((1.0 + n_docs) / (1.0 + df)) + 1.0).astype(_FLOAT)
    return result


def _column_counts(indices: np.ndarray, n_columns: int, *, chunk: int = 1 << 22) -> np.ndarray:
    """How often each column index occurs; in slices, since ``bincount`` copies 32-bit indices to 64 bits first."""
    counts = np.zeros(n_columns, dtype=np.int64)
    for start in range(0, len(indices), chunk):
        counts += np.bincount(indices[start : start + chunk], minlength=n_columns)
    return counts


def _word_ids(texts: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Distinct words in sorted order, every document's tokens as ids into them (one array), and document offsets."""
    provisional: defaultdict[str, int] = defaultdict(itertools.count().__next__)
    number = provisional.__getitem__
    flat = array("q")
    starts = array("q", [0])
    for text in texts:
        flat.extend(map(number, _TOKEN.findall(text.lower())))
        starts.append(len(flat))
    words = sorted(provisional)
    rank = np.empty(len(words), dtype=np.int64)
    rank[np.fromiter((provisional[word] for word in words), dtype=np.int64, count=len(words))] = np.arange(len(words))
    return words, rank[np.frombuffer(flat, dtype=np.int64)], np.frombuffer(starts, dtype=np.int64)


def _counts(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Occurrence counts as a CSR matrix with sorted column indices; ``rows`` must be in nondecreasing order."""
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    counts = sp.csr_matrix((np.ones(len(cols), dtype=_FLOAT), cols, indptr), shape=shape)
    counts.sum_duplicates()
    return counts


def _doc_freq_of_products(left: sp.csr_matrix, right: sp.csr_matrix, chunk: int = 8192) -> np.ndarray:
    """How many rows of ``left @ right`` hold each column, without holding the whole product at once."""
    df = np.zeros(right.shape[1], dtype=np.int64)
    for start in range(0, left.shape[0], chunk):
        df += _column_counts((left[start : start + chunk] @ right).indices, right.shape[1])
    return df


def _hstack(left: sp.csr_matrix, right: sp.csr_matrix, *, chunk: int = 1 << 21) -> sp.csr_matrix:
    """``[left | right]`` as one CSR matrix, copied a slice of rows at a time into arrays allocated once.

    ``scipy.sparse.hstack`` first concatenates the inputs' arrays and then stacks them: two full copies, where the
    result alone is one (the matrix of a few hundred thousand tickets is about a gigabyte).
    """
    n_rows = left.shape[0]
    starts = left.indptr.astype(np.int64) + right.indptr.astype(np.int64)
    nnz = int(starts[-1])
    index_type = np.int32 if max(nnz, left.shape[1] + right.shape[1]) < np.iinfo(np.int32).max else np.int64
    indices = np.empty(nnz, dtype=index_type)
    data = np.empty(nnz, dtype=np.result_type(left.dtype, right.dtype))
    for first, last in _row_slices(starts, chunk):
        for block, at, offset in (
            (left, starts[first:last], 0),
            (right, starts[first:last] + np.diff(left.indptr[first : last + 1]), left.shape[1]),
        ):
            begin, end = int(block.indptr[first]), int(block.indptr[last])
            lengths = np.diff(block.indptr[first : last + 1])
            where = np.repeat(at - block.indptr[first:last], lengths) + np.arange(begin, end)
            indices[where] = block.indices[begin:end] + offset
            data[where] = block.data[begin:end]
    return sp.csr_matrix((data, indices, starts.astype(index_type)), shape=(n_rows, left.shape[1] + right.shape[1]))


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
        """Fit the vocabularies and idf weights on ``texts`` and return their feature matrix.

        Documents are held as one array of word ids, not as lists of strings: unigram and bigram document
        frequencies and counts are array operations on it, and no bigram string is built except for the kept ones
        (a list of token strings per document, and a string per bigram occurrence, took more memory than the
        feature matrix itself and most of the time).
        """
        words, ids, starts = _word_ids(texts)
        n_docs, n_words = len(starts) - 1, len(words)
        lengths = np.diff(starts)
        doc_of = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
        # Word bigrams: consecutive positions inside one document, numbered by their distinct (first, second) pair.
        pair_at = np.flatnonzero(doc_of[1:] == doc_of[:-1])
        pairs, pair_ids = np.unique(ids[pair_at] * np.int64(n_words) + ids[pair_at + 1], return_inverse=True)
        floor = self.min_df if n_docs >= 10 * self.min_df else 1
        # Word unigrams and bigrams kept when they occur in at least ``min_df`` documents.
        spell_counts = _counts(doc_of, ids, (n_docs, n_words))  # documents by distinct word
        word_df = _column_counts(spell_counts.indices, n_words)
        pair_df = _column_counts(_counts(doc_of[pair_at], pair_ids, (n_docs, len(pairs))).indices, len(pairs))
        kept_words = np.flatnonzero(word_df >= floor)
        kept_pairs = np.flatnonzero(pair_df >= floor)
        terms = [words[j] for j in kept_words]
        terms += [f"{words[key // n_words]} {words[key % n_words]}" for key in pairs[kept_pairs].tolist()]
        order = sorted(range(len(terms)), key=terms.__getitem__)
        column = np.empty(len(terms), dtype=np.int64)
        column[order] = np.arange(len(terms))
        word_column = np.full(n_words, -1, dtype=np.int64)
        word_column[kept_words] = column[: len(kept_words)]
        pair_column = np.full(len(pairs), -1, dtype=np.int64)
        pair_column[kept_pairs] = column[len(kept_words) :]
        self.word_names = [terms[i] for i in order]
        self.word_vocabulary = {term: i for i, term in enumerate(self.word_names)}
        # Unigram and bigram counts (disjoint columns, rows in document order), summed into one canonical matrix.
        shape = (n_docs, len(self.word_names))
        unigram_cols = word_column[ids]
        bigram_cols = pair_column[pair_ids]
        unigrams = unigram_cols >= 0
        bigrams = bigram_cols >= 0
        word_counts = sp.csr_matrix(
            _counts(doc_of[unigrams], unigram_cols[unigrams], shape)
            + _counts(doc_of[pair_at][bigrams], bigram_cols[bigrams], shape)
        )
        del unigram_cols, bigram_cols, unigrams, bigrams, ids, doc_of, pair_at, pair_ids, pairs
        self.word_idf = _idf(word_counts)
        blocks = [_tfidf(word_counts, self.word_idf)]
        if self.use_chars:
            self.spell_index = {word: i for i, word in enumerate(words)}
            grams_of = [_char_grams(word, *self.char_range) for word in words]
            # Document frequency of an n-gram = documents holding any word that contains it.
            vocabulary: dict[str, int] = {}
            gram_rows, gram_cols = [], []
            for row, grams in enumerate(grams_of):
                for gram in grams:
                    gram_rows.append(row)
                    gram_cols.append(vocabulary.setdefault(gram, len(vocabulary)))
            full = sp.csr_matrix(
                (np.ones(len(gram_rows), dtype=_FLOAT), (gram_rows, gram_cols)), shape=(n_words, len(vocabulary))
            )
            # Counted in slices of documents first, so that n-grams below ``min_df`` never reach a full-size matrix.
            keep = np.flatnonzero(_doc_freq_of_products(spell_counts, full) >= floor)
            names = list(vocabulary)
            self.char_names = [names[j] for j in keep]
            self.char_vocabulary = {gram: i for i, gram in enumerate(self.char_names)}
            self.spellings = sp.csr_matrix(full[:, keep])
            char_counts = sp.csr_matrix(spell_counts @ self.spellings)
            self.char_idf = _idf(char_counts)
            blocks.append(_tfidf(char_counts, self.char_idf))
        return blocks[0] if len(blocks) == 1 else _hstack(*blocks)

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
        return blocks[0] if len(blocks) == 1 else _hstack(*blocks)

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
