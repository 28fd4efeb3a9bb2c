"""The ticket text classifier: training from a CSV or from memory, prediction, evaluation, selective answering.

The model is a small stack. Two base models see the same word and character TF-IDF features
(``_text_features``): an NB-SVM (Wang and Manning, 2012; ``_nb_svm``), the strongest single text model here, and a
complement naive Bayes, which is weaker but errs differently (it is smoothed towards rare classes). The NB-SVM is
one linear SVM per class, one against the rest, trained on the features scaled by that class's naive Bayes
log-count ratio, so words that tell the class apart start with a larger weight; the scaling is folded into the
weights, and the trained model is one linear map like a plain SVM. Its class fits run in worker processes. A
multinomial logistic regression combines the base models' out-of-fold scores into calibrated class probabilities,
so the combiner never learns from a score a base model produced on its own training rows. The SVM's
regularisation strength is chosen on the same inner folds.

From the combiner's own out-of-fold probabilities the model measures itself (accuracy, macro-F1, Brier score,
reliability curve) and picks per-class confidence thresholds for the target precision (``_thresholds``): no
figure or setting looks at data outside the training file.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.naive_bayes import ComplementNB
from threadpoolctl import threadpool_limits

from opsrail.ml._labelled_csv import (
    TEXT_JOINER,
    TrainingDataError,
    read_labelled_csv,
    read_labelled_texts,
    text_columns,
)
from opsrail.ml._metrics import summary
from opsrail.ml._nb_svm import NB_SVM_ALPHA, FitPool, default_workers
from opsrail.ml._text_features import TextFeatures
from opsrail.ml._thresholds import choose_thresholds
from opsrail.ml._types import Prediction, Progress, no_progress

SVM_C_GRID = (0.25, 0.5)
"""NB-SVM regularisation strengths tried on the inner folds (larger C fits the training tickets more closely)."""

INNER_FOLDS = 3
"""Inner folds for out-of-fold scores: enough to train the combiner and thresholds honestly, cheap enough to fit
the whole ticket file in well under a minute on two cores."""

_NB_FLOOR = -30.0
"""Naive Bayes log-probabilities are clipped here: far-off classes otherwise dominate the combiner's input scale."""

_EXPLAIN = 5


def _nb_scores(log_probs: np.ndarray, features: sp.csr_matrix) -> np.ndarray:
    """Normalised naive Bayes log-probabilities from the word block of the features, clipped at ``_NB_FLOOR``."""
    joint = np.asarray(features[:, : log_probs.shape[1]] @ log_probs.T, dtype=np.float64)
    joint -= joint.max(axis=1, keepdims=True)
    joint -= np.log(np.exp(joint).sum(axis=1, keepdims=True))
    return np.maximum(joint, _NB_FLOOR)


def _nb_fit(features: sp.csr_matrix, y: np.ndarray, n_words: int, n_classes: int) -> np.ndarray:
    """Complement naive Bayes weights over the word columns, one row per class (rows for absent classes are 0)."""
    model = ComplementNB(alpha=0.3).fit(features[:, :n_words], y)
    weights = np.zeros((n_classes, n_words))
    weights[model.classes_] = model.feature_log_prob_
    return weights


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


class TextClassifier:
    """A trained ticket classifier (see the module docstring); picklable, plain attributes only."""

    task: ClassVar[str] = "text-classifier"

    def __init__(
        self,
        *,
        classes: list[str],
        features: TextFeatures,
        svm_weights: np.ndarray,
        svm_bias: np.ndarray,
        nb_weights: np.ndarray,
        combiner_weights: np.ndarray,
        combiner_bias: np.ndarray,
        thresholds: list[float],
        params: dict[str, Any],
        metrics: dict[str, Any],
        columns: dict[str, str],
    ) -> None:
        self.classes = classes
        self.features = features
        # Dense float32 weights: one ticket touches a few hundred columns, gathered with fancy indexing.
        self.svm_weights = svm_weights.astype(np.float32)
        self.svm_bias = svm_bias.astype(np.float64)
        self.nb_weights = nb_weights.astype(np.float32)
        self.combiner_weights = combiner_weights
        self.combiner_bias = combiner_bias
        self._thresholds = thresholds
        self._params = params
        self._metrics = metrics
        self._columns = columns

    @property
    def params(self) -> Mapping[str, Any]:
        return self._params

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self._metrics

    @property
    def columns(self) -> Mapping[str, str]:
        return self._columns

    @property
    def thresholds(self) -> Mapping[str, float]:
        return dict(zip(self.classes, self._thresholds, strict=True))

    def _combine(self, svm: np.ndarray, nb: np.ndarray) -> np.ndarray:
        z: np.ndarray = np.hstack([svm, nb]) @ self.combiner_weights.T + self.combiner_bias
        if z.shape[-1] == 1:
            # A binary combiner keeps one logit, for the second class.
            return np.hstack([-z, z]) / 2.0
        return z

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated class probabilities, one row per text, columns in ``classes`` order."""
        features = self.features.transform(texts)
        svm = np.asarray(features @ self.svm_weights.T, dtype=np.float64) + self.svm_bias
        # Two-class models trained with the earlier plain SVM keep one row (the second class); NB-SVMs keep both.
        if svm.shape[1] == 1:
            svm = np.hstack([-svm, svm])
        nb = _nb_scores(self.nb_weights, features)
        return _softmax(self._combine(svm, nb))

    def text_keys(self, inputs: Mapping[str, Any]) -> list[str]:
        """The inputs holding the text: ``text``, else the column the model was trained on, else those of its
        columns (a text trained on ``Summary,Description``) that hold a string, in the training order; empty when
        none does."""
        spec = self._columns.get("text", "text")
        for key in ("text", spec):
            if isinstance(inputs.get(key), str):
                return [key]
        return [name for name in text_columns(spec) if isinstance(inputs.get(name), str)]

    def text_of(self, inputs: Mapping[str, Any]) -> str | None:
        """The text to classify (several columns joined as in training); None when the inputs hold none."""
        keys = self.text_keys(inputs)
        if not keys:
            return None
        if len(keys) == 1:
            return str(inputs[keys[0]])
        return TEXT_JOINER.join(part for part in (str(inputs[key]) for key in keys) if part.strip())

    def predict(self, inputs: Mapping[str, Any]) -> Prediction:
        text = self.text_of(inputs)
        if text is None:
            columns = text_columns(self._columns.get("text", "text"))
            also = ""
            if columns != ["text"]:
                fields = ", ".join(f'"{name}": str' for name in columns)
                also = f" (or {{{fields}}}, the training column{'s' if len(columns) > 1 else ''})"
            raise TypeError(f'predict expects {{"text": str}}{also}')
        cols, values = self.features.vector(text)
        # Feature-major copies of the weights: a ticket's columns are then contiguous rows, not strided reads
        # across every class (made on first use, so pickled models stay as they are).
        by_feature = self.__dict__.get("_svm_by_feature")
        if by_feature is None:
            by_feature = np.ascontiguousarray(self.svm_weights.T)
            self.__dict__["_svm_by_feature"] = by_feature
        contributions = (by_feature[cols] * values[:, None]).T
        svm = contributions.sum(axis=1, dtype=np.float64) + self.svm_bias
        if svm.shape[0] == 1:
            svm = np.array([-svm[0], svm[0]])
        n_words = self.nb_weights.shape[1]
        word = cols < n_words
        joint = self.nb_weights[:, cols[word]] @ values[word].astype(np.float64)
        joint -= joint.max()
        joint -= np.log(np.exp(joint).sum())
        nb = np.maximum(joint, _NB_FLOOR)
        probs = _softmax(self._combine(svm[None, :], nb[None, :]))[0]
        best = int(probs.argmax())
        confidence = float(probs[best])
        # Terms that pushed the predicted class: their SVM contribution, positive ones first.
        row = contributions[best if len(self.svm_bias) > 1 else 0] * (1.0 if len(self.svm_bias) > 1 or best else -1.0)
        # The strongest few: a partial selection, then a sort of those only (a full sort costs more on long texts).
        head = np.argpartition(-row, _EXPLAIN - 1)[:_EXPLAIN] if len(row) > _EXPLAIN else np.arange(len(row))
        top = head[np.argsort(-row[head])]
        explanation = tuple(
            {"feature": self.features.feature_name(int(cols[j])), "weight": round(float(row[j]), 6)}
            for j in top
            if row[j] > 0
        )
        return Prediction(
            label=self.classes[best],
            value=None,
            confidence=confidence,
            accepted=confidence >= self._thresholds[best],
            probabilities={name: float(p) for name, p in zip(self.classes, probs, strict=True)},
            explanation=explanation,
        )

    def evaluate(self, path: Path, *, progress: Progress = no_progress) -> dict[str, Any]:
        texts, labels = read_labelled_csv(path, text=self._columns["text"], label=self._columns["label"])
        progress("score", 0.0)
        index = {name: k for k, name in enumerate(self.classes)}
        truth = np.array([index.get(label, -1) for label in labels])
        chunks = []
        step = 4096
        for start in range(0, len(texts), step):
            chunks.append(self.probabilities(texts[start : start + step]))
            progress("score", min(1.0, (start + step) / len(texts)))
        probs = np.vstack(chunks)
        return summary(
            truth, probs, self.classes, self._thresholds, target_precision=float(self._params["target_precision"])
        )


def _check(texts: Sequence[str], labels: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    if len(texts) != len(labels):
        raise TrainingDataError(f"{len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise TrainingDataError("no training rows")
    classes, y, counts = np.unique(np.asarray(labels, dtype=object), return_inverse=True, return_counts=True)
    names = [str(c) for c in classes]
    if len(names) < 2:
        raise TrainingDataError(f"every row has the label {names[0]!r}: a classifier needs at least two classes")
    if counts.max() < 2:
        raise TrainingDataError("every label occurs once: a classifier needs classes with at least two examples")
    return names, np.asarray(y, dtype=np.int64), counts


def fit_text_classifier(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    target_precision: float = 0.95,
    seed: int = 0,
    progress: Progress = no_progress,
    columns: Mapping[str, str] | None = None,
    workers: int | None = None,
    file: Mapping[str, Any] | None = None,
) -> TextClassifier:
    """Train from memory; see the module docstring for the model and how its settings are chosen.

    ``file``: how the training file was read, kept in the parameters. ``workers``: processes for the NB-SVM's
    class fits (default: the cores available, at most four, once the features hold two million values, about
    4,000 tickets; 1 fits in this process). The model is the same whatever the number.
    """
    if not 0.0 < target_precision <= 1.0:
        raise ValueError(f"target_precision must be in (0, 1], not {target_precision}")
    classes, y, counts = _check(texts, labels)
    started = time.perf_counter()
    n_classes = len(classes)
    progress("vectorise", 0.0)
    features = TextFeatures()
    matrix = features.fit_transform(list(texts))
    n_words = len(features.word_vocabulary)
    if matrix.shape[1] == 0:
        blank = sum(1 for text in texts if not text.strip())
        raise TrainingDataError(
            "the text holds no word or character sequence found in two rows or more: nothing to learn from"
            + (
                f" ({blank} of {len(texts)} rows {'has' if blank == 1 else 'have'} no text; is it the right column?)"
                if blank
                else ""
            )
        )
    progress("vectorise", 1.0)

    # A class rarer than the folds is missing from some folds' training parts; those fits score it as a plain "no".
    folds = int(min(INNER_FOLDS, counts.max()))
    rare = {name: int(count) for name, count in zip(classes, counts, strict=True) if count < folds}
    with warnings.catch_warnings():  # the warning about rare classes: they are reported in the metrics
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        parts = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    svm_oof = {c: np.zeros((len(y), n_classes)) for c in SVM_C_GRID}
    nb_oof = np.zeros((len(y), n_classes))
    best_c = SVM_C_GRID[0]
    inner_accuracy: dict[float, float] = {}
    with FitPool(default_workers(n_classes, matrix.nnz) if workers is None else workers) as pool:
        pool.share(matrix)
        for fold, (train, held) in enumerate(parts):
            progress(f"fit fold {fold + 1}/{folds}", fold / folds)
            # The grid is compared on the first fold only; later folds fit just the chosen strength (training time).
            grid = SVM_C_GRID if fold == 0 else (best_c,)
            for c, (weights, bias) in zip(grid, pool.fit(train, y[train], n_classes, cs=grid, seed=seed), strict=True):
                svm_oof[c][held] = np.asarray(matrix[held] @ weights.T) + bias
            nb_oof[held] = _nb_scores(_nb_fit(matrix[train], y[train], n_words, n_classes), matrix[held])
            _score_absent_as_least_likely([svm_oof[c] for c in grid] + [nb_oof], held, np.unique(y[train]))
            if fold == 0:
                inner_accuracy = {c: float(np.mean(svm_oof[c][held].argmax(axis=1) == y[held])) for c in SVM_C_GRID}
                best_c = max(SVM_C_GRID, key=lambda c: (inner_accuracy[c], -c))
        progress(f"fit fold {folds}/{folds}", 1.0)
        stacked = np.hstack([svm_oof[best_c], nb_oof])

        # The combiner's own out-of-fold probabilities: the honest figures and the thresholds come from these.
        progress("calibrate", 0.0)
        combiner_oof = np.zeros((len(y), n_classes))
        # The fold fits and the final one are independent: the idle NB-SVM workers take them.
        *fold_fits, combiner = pool.map(_combiner_fit, [(stacked[t], y[t]) for t, _ in parts] + [(stacked, y)])
        for fold_fit, (_, held) in zip(fold_fits, parts, strict=True):
            combiner_oof[held] = _expand(fold_fit.predict_proba(stacked[held]), fold_fit.classes_, n_classes)
        thresholds = choose_thresholds(y, combiner_oof, target_precision)

        progress("fit final", 0.0)
        [(svm_weights, svm_bias)] = pool.fit(None, y, n_classes, cs=(best_c,), seed=seed)
        nb_weights = _nb_fit(matrix, y, n_words, n_classes)
        progress("fit final", 1.0)

    metrics = summary(y, combiner_oof, classes, thresholds, target_precision=target_precision)
    metrics = {"validation": f"{folds}-fold inner cross-validation on the training rows", **metrics}
    metrics["svm_first_fold_accuracy"] = {f"{c:g}": round(a, 4) for c, a in inner_accuracy.items()}
    if rare:
        metrics["rare_classes"] = rare
        metrics["warnings"] = [
            f"{len(rare)} class(es) have fewer than {folds} examples ({', '.join(sorted(rare))}): the model can "
            "answer them, but its figures and thresholds for them rest on almost nothing"
        ]
    metrics["train_seconds"] = round(time.perf_counter() - started, 2)
    params: dict[str, Any] = {
        "target_precision": target_precision,
        "seed": seed,
        "linear_model": "NB-SVM, one against the rest (log-count ratio scaling)",
        "svm_c": best_c,
        "svm_c_grid": list(SVM_C_GRID),
        "nb_svm_alpha": NB_SVM_ALPHA,
        "inner_folds": folds,
        "word_ngrams": [1, 2],
        "char_ngrams": list(features.char_range),
        "min_df": features.min_df,
        "n_features": features.n_features,
        "nb_alpha": 0.3,
        "combiner": "multinomial logistic regression on out-of-fold NB-SVM scores and naive Bayes log-probabilities",
        "combiner_c": COMBINER_C,
        "combiner_inputs": "standardised (folded into the stored weights)",
        "n_train": len(y),
        "classes": classes,
    }
    if file is not None:
        params["file"] = dict(file)
    return TextClassifier(
        classes=classes,
        features=features,
        svm_weights=svm_weights,
        svm_bias=svm_bias,
        nb_weights=nb_weights,
        combiner_weights=np.atleast_2d(combiner.coef_),
        combiner_bias=np.atleast_1d(combiner.intercept_),
        thresholds=thresholds,
        params=params,
        metrics=metrics,
        columns=dict(columns or {"text": "text", "label": "label"}),
    )


def _score_absent_as_least_likely(blocks: list[np.ndarray], held: np.ndarray, present: np.ndarray) -> None:
    """Give the held rows' scores for classes absent from a fold's training part (a class with fewer examples than
    folds) each row's lowest score among the present classes. The base models' placeholders (an SVM's plain "no",
    naive Bayes' floor) lie outside the range the combiner sees for that class in the other folds, and shifted its
    answers for every class: on a 3,000-ticket file with one class of one example, out-of-fold accuracy fell from
    0.80 to 0.63."""
    n_classes = blocks[0].shape[1]
    absent = np.setdiff1d(np.arange(n_classes), present)
    if not absent.size:
        return
    for block in blocks:
        lowest = block[np.ix_(held, present)].min(axis=1, keepdims=True)
        block[np.ix_(held, absent)] = lowest


COMBINER_C = 0.25
"""Regularisation of the combiner, on standardised inputs (chosen on the inner out-of-fold scores of the ticket file
and of a 64-class file; see docs/models.md)."""


def _combiner_fit(stacked: np.ndarray, y: np.ndarray) -> LogisticRegression:
    """The combiner: a multinomial logistic regression on standardised inputs, with the standardisation folded into
    its weights afterwards, so it scores raw inputs. The naive Bayes columns span about 30 units and the SVM ones about
    5: unscaled, L-BFGS needed 300 iterations for eight classes and did not converge in 1,000 for 64 (two minutes a
    fit); scaled, 40 and 120. One BLAS thread: the matrices are small, and two threads only contend."""
    centre = stacked.mean(axis=0)
    scale = stacked.std(axis=0)
    scale[scale == 0.0] = 1.0
    with threadpool_limits(limits=1, user_api="blas"):
        model = LogisticRegression(C=COMBINER_C, max_iter=1000).fit((stacked - centre) / scale, y)
    model.coef_ = model.coef_ / scale
    model.intercept_ = model.intercept_ - model.coef_ @ centre
    return model


def _expand(probs: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((probs.shape[0], n_classes))
    out[:, present] = probs
    return out


def train_text_classifier(
    path: Path,
    *,
    text: str,
    label: str,
    target_precision: float = 0.95,
    seed: int = 0,
    progress: Progress = no_progress,
    workers: int | None = None,
) -> TextClassifier:
    """Train from a CSV (plain or gzip, any of the usual delimiters and encodings; ``_labelled_csv``) with a text
    column and a label column of any names. How the file was read is kept in the parameters."""
    progress("read", 0.0)
    read = read_labelled_texts(Path(path), text=text, label=label)
    return fit_text_classifier(
        read.texts,
        read.labels,
        target_precision=target_precision,
        seed=seed,
        progress=progress,
        columns={"text": text, "label": label},
        workers=workers,
        file={"encoding": read.encoding, "delimiter": read.delimiter, "rows_without_label": read.skipped},
    )
