"""The ticket text classifier on a slice of the real help-desk tickets, and its errors on malformed files."""

from __future__ import annotations

import csv
import gzip
import io
import pickle
import random
from pathlib import Path

import pytest

from opsrail.ml._text import TextClassifier, TrainingDataError, train_text_classifier
from opsrail.ml._types import Prediction, TrainedModel

TICKETS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "it_tickets" / "tickets_train.csv.gz"
pytestmark = pytest.mark.skipif(not TICKETS.exists(), reason="ticket data not present")


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue())
    return path


@pytest.fixture(scope="module")
def slices(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """2,000 training and 1,000 evaluation tickets sampled from the real file, under other column names."""
    with gzip.open(TICKETS, "rt", encoding="utf-8", newline="") as stream:
        rows = [[row["Document"], row["Topic_group"]] for row in csv.DictReader(stream)]
    random.Random(7).shuffle(rows)
    folder = tmp_path_factory.mktemp("tickets")
    train = _write(folder / "train.csv", ["body", "topic"], rows[:2000])
    test = _write(folder / "test.csv", ["body", "topic"], rows[2000:3000])
    return train, test


@pytest.fixture(scope="module")
def model(slices: tuple[Path, Path]) -> TextClassifier:
    return train_text_classifier(slices[0], text="body", label="topic", seed=0)


def test_model_satisfies_the_protocol(model: TextClassifier) -> None:
    assert isinstance(model, TrainedModel)
    assert model.task == "text-classifier"
    assert model.columns == {"text": "body", "label": "topic"}
    assert set(model.thresholds) == set(model.params["classes"])
    assert 0.5 < model.metrics["accuracy"] <= 1.0
    assert {"accuracy", "macro_f1", "brier", "reliability", "coverage_at_thresholds"} <= set(model.metrics)


def test_accuracy_is_well_above_chance(model: TextClassifier, slices: tuple[Path, Path]) -> None:
    figures = model.evaluate(slices[1])
    assert figures["n"] == 1000
    # Eight classes, the largest 28%: a useful model is far above that.
    assert figures["accuracy"] > 0.7
    assert figures["macro_f1"] > 0.6
    assert 0.0 <= figures["brier"] < 0.5
    assert set(figures["per_class"]) == set(model.params["classes"])


def test_thresholds_raise_precision_at_some_coverage(model: TextClassifier, slices: tuple[Path, Path]) -> None:
    figures = model.evaluate(slices[1])
    assert figures["precision_at_thresholds"] > figures["accuracy"]
    assert 0.2 < figures["coverage_at_thresholds"] < 1.0
    assert 0.0 < figures["coverage_at_precision_0.95"] < 1.0


def test_predict_shape_and_explanation(model: TextClassifier) -> None:
    answer = model.predict({"text": "mailbox full please increase mailbox size quota storage"})
    assert isinstance(answer, Prediction)
    assert answer.label is not None
    assert answer.label in model.thresholds
    assert answer.value is None
    assert answer.confidence == pytest.approx(max(answer.probabilities.values()))
    assert sum(answer.probabilities.values()) == pytest.approx(1.0)
    assert answer.accepted == (answer.confidence >= model.thresholds[answer.label])
    assert 1 <= len(answer.explanation) <= 5
    weights = [item["weight"] for item in answer.explanation]
    assert weights == sorted(weights, reverse=True)
    assert all(isinstance(item["feature"], str) and item["weight"] > 0 for item in answer.explanation)
    assert model.predict({"text": ""}).label in model.thresholds


def test_pickle_round_trip_predicts_the_same(model: TextClassifier) -> None:
    copy = pickle.loads(pickle.dumps(model))
    for text in ["new laptop purchase order", "access rights to project folder", "zzzz unseenword qq"]:
        assert copy.predict({"text": text}) == model.predict({"text": text})


def test_small_three_class_file_with_unseen_words(tmp_path: Path) -> None:
    words = {"billing": "invoice refund charge", "outage": "down error timeout", "login": "password reset locked"}
    rows = [[f"{words[k]} case {i}", k] for i in range(17) for k in words][:50]
    path = _write(tmp_path / "small.csv", ["t", "l"], rows)
    small = train_text_classifier(path, text="t", label="l")
    assert sorted(small.thresholds) == sorted(words)
    assert small.predict({"text": "refund my invoicez"}).label == "billing"
    assert small.evaluate(path)["accuracy"] > 0.9


def test_missing_column_names_the_columns(slices: tuple[Path, Path]) -> None:
    with pytest.raises(TrainingDataError, match=r"no column 'Document'.*'body', 'topic'"):
        train_text_classifier(slices[0], text="Document", label="topic")


def test_single_class_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "one.csv", ["text", "label"], [["a b c", "only"], ["d e f", "only"]])
    with pytest.raises(TrainingDataError, match="two classes"):
        train_text_classifier(path, text="text", label="label")


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(TrainingDataError, match="empty"):
        train_text_classifier(path, text="text", label="label")
    header_only = _write(tmp_path / "header.csv", ["text", "label"], [])
    with pytest.raises(TrainingDataError, match="no rows"):
        train_text_classifier(header_only, text="text", label="label")
