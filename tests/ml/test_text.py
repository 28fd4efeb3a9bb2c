"""The ticket text classifier on a slice of the real help-desk tickets, and its errors on malformed files."""

from __future__ import annotations

import csv
import gzip
import io
import os
import pickle
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.svm import LinearSVC

from opsrail.ml._labelled_csv import TrainingDataError, labelled_records
from opsrail.ml._nb_svm import (
    MAX_WORKERS,
    MIN_PARALLEL_NONZEROS,
    NB_SVM_ALPHA,
    WORKER_BYTES_PER_VALUE,
    FitPool,
    available_memory,
    default_workers,
    nb_svm_fit,
    remove_stale_folders,
)
from opsrail.ml._text import TextClassifier, train_text_classifier
from opsrail.ml._text_features import TextFeatures, _char_grams, _hstack, _tfidf, tokens
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


def test_predict_takes_the_text_under_the_training_column_too(model: TextClassifier) -> None:
    text = "mailbox full please increase mailbox size quota storage"
    assert model.predict({"body": text}) == model.predict({"text": text})
    with pytest.raises(TypeError, match=r'\{"body": str\}, the training column'):
        model.predict({"subject": text})


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


def test_one_ticket_vector_equals_the_batch_row(model: TextClassifier) -> None:
    features = model.features
    texts = [
        "printer printer printer jammed, paper jammed again in the printer tray",
        "zzqx unseenwordy unseenwordy access access rights to the shared folder",
        "a b c",
        "",
        "Purchase order PO-4411 for 3 laptops; purchase approved by finance",
    ]
    batch = features.transform(texts)
    for row, text in enumerate(texts):
        cols, values = features.vector(text)
        expected = batch.getrow(row).toarray().ravel()
        got = np.zeros_like(expected)
        np.add.at(got, cols, values)
        assert len(set(cols.tolist())) == len(cols)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_word_block_is_the_usual_tfidf_and_characters_come_from_words(slices: tuple[Path, Path]) -> None:
    """The array-based fit gives what scikit-learn's vectorisers give on the same settings, on real tickets."""
    with slices[0].open(encoding="utf-8", newline="") as stream:
        texts = [*[row["body"] for row in csv.DictReader(stream)][:1500], "", "x y", "Éclair NAÏVE café"]
    features = TextFeatures()
    matrix = features.fit_transform(texts)
    n_words = len(features.word_vocabulary)
    reference = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, dtype=np.float64)
    expected = reference.fit_transform(texts)
    assert features.word_names == reference.get_feature_names_out().tolist()
    assert abs(matrix[:, :n_words] - expected).max() < 1e-6
    # Character n-grams: each word's n-grams once per occurrence, kept when found in two or more documents.
    counts = CountVectorizer(analyzer=lambda text: [g for w in tokens(text) for g in _char_grams(w, 2, 5)], min_df=2)
    chars = counts.fit_transform(texts)
    assert sorted(features.char_names) == counts.get_feature_names_out().tolist()
    ours = [features.char_vocabulary[name] for name in counts.get_feature_names_out()]
    assert abs(matrix[:, n_words:][:, ours] - TfidfTransformer(sublinear_tf=True).fit_transform(chars)).max() < 1e-6
    assert abs(features.transform(texts[:50]) - matrix[:50]).max() == 0.0


@pytest.mark.parametrize("chunk", [1, 3, 1 << 21])
def test_weighting_and_stacking_in_slices_give_the_whole_matrix_answer(chunk: int) -> None:
    counts = sp.random(40, 9, density=0.3, format="csr", random_state=3, dtype=np.float32)
    counts.data = np.ceil(counts.data * 4)  # counts 1-4; rows 7 and 20 left empty
    for row in (7, 20):
        counts.data[counts.indptr[row] : counts.indptr[row + 1]] = 0.0
    counts.eliminate_zeros()
    idf = np.linspace(1.0, 3.0, 9, dtype=np.float32)
    weighted = _tfidf(counts.copy(), idf, chunk=chunk)
    dense = counts.toarray().astype(np.float64)
    expected = np.where(dense > 0, np.log(np.maximum(dense, 1.0)) + 1.0, 0.0) * idf
    norms = np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(weighted.toarray(), expected / np.where(norms > 0, norms, 1.0), atol=1e-6)
    right = sp.random(40, 5, density=0.4, format="csr", random_state=4, dtype=np.float32)
    stacked = _hstack(weighted, right, chunk=chunk)
    assert np.array_equal(stacked.toarray(), sp.hstack([weighted, right]).toarray())
    assert np.array_equal(stacked.indices, sp.hstack([weighted, right], format="csr").indices)


def test_nb_svm_scores_raw_features_as_its_svms_score_scaled_ones() -> None:
    rng = np.random.default_rng(3)
    features = sp.random(300, 40, density=0.2, format="csr", random_state=4)
    y = rng.integers(0, 3, size=300)
    # Class 1 owns column 0: its ratio, and so its weight, must favour it.
    features = sp.lil_matrix(features)
    features[np.flatnonzero(y == 1), 0] = 1.0
    features = sp.csr_matrix(features)
    weights, bias = nb_svm_fit(features, y, 4, c=0.5, seed=0)
    assert weights.shape == (4, 40)
    for k in range(3):
        inside = np.asarray(features[y == k].sum(axis=0)).ravel() + NB_SVM_ALPHA
        outside = np.asarray(features[y != k].sum(axis=0)).ravel() + NB_SVM_ALPHA
        ratio = np.log(inside / inside.sum()) - np.log(outside / outside.sum())
        scaled = features @ sp.diags(ratio)
        svm = LinearSVC(C=0.5, random_state=0).fit(scaled, (y == k).astype(int))
        np.testing.assert_allclose(features @ weights[k] + bias[k], svm.decision_function(scaled), atol=1e-6)
    assert weights[1, 0] > 0 > weights[0, 0]
    # Class 3 has no rows: no weights, and the score of a plain "no".
    assert not weights[3].any() and bias[3] == -1.0


def test_worker_processes_fit_exactly_what_this_process_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    features = sp.random(400, 60, density=0.15, format="csr", random_state=6, dtype=np.float32)
    y = rng.integers(0, 4, size=400)
    rows = np.sort(rng.choice(400, size=300, replace=False))
    part_y = np.where(y[rows] == 3, 0, y[rows])  # class 3 absent from this part
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with FitPool(2) as pool:
        pool.share(features)
        assert len(list(tmp_path.iterdir())) == 1  # the matrix, once, for the workers
        pooled = pool.fit(rows, part_y, 4, cs=(0.25, 0.5), seed=1)
        [whole] = pool.fit(None, y, 4, cs=(0.5,), seed=1)
    assert not list(tmp_path.iterdir())  # the shared files are gone with the pool
    for (weights, bias), c in zip(pooled, (0.25, 0.5), strict=True):
        here_weights, here_bias = nb_svm_fit(features[rows], part_y, 4, c=c, seed=1)
        np.testing.assert_array_equal(weights, here_weights)
        np.testing.assert_array_equal(bias, here_bias)
    assert not pooled[0][0][3].any() and pooled[0][1][3] == -1.0
    np.testing.assert_array_equal(whole[0], nb_svm_fit(features, y, 4, c=0.5, seed=1)[0])


def test_folders_of_killed_trainings_are_removed_later(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    hour_ago = 3700.0
    left = tmp_path / f"opsrail-nbsvm-{ended.pid}-abc"
    recent = tmp_path / f"opsrail-nbsvm-{ended.pid}-def"
    running = tmp_path / f"opsrail-nbsvm-{os.getppid()}-ghi"
    other = tmp_path / "opsrail-nbsvm-notapid-jkl"
    for folder in (left, recent, running, other):
        folder.mkdir()
        (folder / "data.npy").write_bytes(b"x")
    for folder in (left, running, other):
        stamp = folder.stat().st_mtime - hour_ago
        os.utime(folder, (stamp, stamp))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with FitPool(2) as pool:
        pool.share(sp.random(50, 10, density=0.3, format="csr", random_state=1))
        assert pool._folder is not None and pool._folder.startswith(str(tmp_path / f"opsrail-nbsvm-{os.getpid()}-"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (recent, running, other))
    # The age guard alone keeps a recent folder; nothing else is touched.
    assert remove_stale_folders(tmp_path, older_than=0.0) == [recent]


def test_small_files_fit_in_process_and_large_ones_on_every_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("opsrail.ml._nb_svm.available_memory", lambda: 64 * 2**30)
    assert default_workers(8, MIN_PARALLEL_NONZEROS - 1) == 1
    assert default_workers(8, MIN_PARALLEL_NONZEROS) == min(len(os.sched_getaffinity(0)), MAX_WORKERS)
    assert default_workers(1, MIN_PARALLEL_NONZEROS) == 1


def test_workers_are_as_many_as_the_available_memory_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("opsrail.ml._nb_svm.os.sched_getaffinity", lambda _pid: set(range(8)))
    one_worker = WORKER_BYTES_PER_VALUE * 100_000_000  # a matrix of 100 million values, about 191,000 tickets
    here = available_memory()  # this machine's own figure, read before the stand-ins below
    assert here is None or here > 0
    cases: list[tuple[int | None, int]] = [(None, 4), (10 * one_worker, 4), (4 * one_worker, 2), (one_worker, 1)]
    for memory, expected in cases:
        monkeypatch.setattr("opsrail.ml._nb_svm.available_memory", lambda memory=memory: memory)
        assert default_workers(8, 100_000_000) == expected, memory


def test_without_worker_processes_the_fits_run_here_not_on_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """joblib falls back to threads where processes cannot start; liblinear's fits must not share a process."""
    monkeypatch.setattr("opsrail.ml._nb_svm.BACKENDS", {})
    features = sp.random(200, 30, density=0.2, format="csr", random_state=2, dtype=np.float32)
    y = np.arange(200) % 3
    with FitPool(2) as pool:
        pool.share(features)
        assert pool._parallel is None
        [(weights, _)] = pool.fit(None, y, 3, cs=(0.5,), seed=0)
    np.testing.assert_array_equal(weights, nb_svm_fit(features, y, 3, c=0.5, seed=0)[0])


def test_when_the_workers_fail_the_fits_run_here(caplog: pytest.LogCaptureFixture) -> None:
    features = sp.random(200, 30, density=0.2, format="csr", random_state=3, dtype=np.float32)
    y = np.arange(200) % 3
    with FitPool(2) as pool:
        pool.share(features)
        assert pool._folder is not None
        assert pool.map(pow, [(2, 3), (3, 2), (5, 1)]) == [8, 9, 5]  # on the workers, in order
        shutil.rmtree(pool._folder)  # the workers find no matrix
        [(weights, _)] = pool.fit(np.arange(150), y[:150], 3, cs=(0.5,), seed=0)
        assert pool._parallel is None and "run in this process" in caplog.text
        assert pool.map(pow, [(2, 3)]) == [8]  # later work runs here
    np.testing.assert_array_equal(weights, nb_svm_fit(features[:150], y[:150], 3, c=0.5, seed=0)[0])


def test_the_same_data_and_seed_give_the_same_model(slices: tuple[Path, Path]) -> None:
    first = train_text_classifier(slices[0], text="body", label="topic", seed=3, workers=1)
    second = train_text_classifier(slices[0], text="body", label="topic", seed=3, workers=2)
    np.testing.assert_array_equal(first.svm_weights, second.svm_weights)
    np.testing.assert_array_equal(first.combiner_weights, second.combiner_weights)
    timeless = [{k: v for k, v in m.metrics.items() if k != "train_seconds"} for m in (first, second)]
    assert first.thresholds == second.thresholds and timeless[0] == timeless[1]


def test_a_script_without_a_main_guard_trains_with_workers(slices: tuple[Path, Path], tmp_path: Path) -> None:
    """Worker processes must not run the caller's script again (as plain multiprocessing's spawn would)."""
    script = tmp_path / "train.py"
    script.write_text(
        "from pathlib import Path\n"
        "from opsrail.ml._text import train_text_classifier\n"
        f"model = train_text_classifier(Path({str(slices[0])!r}), text='body', label='topic', workers=2)\n"
        "print('trained', len(model.classes))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("trained") == 1


def test_two_class_file_trains_and_answers_both_ways(tmp_path: Path) -> None:
    rows = [[f"printer jammed paper tray {i}", "hardware"] for i in range(30)]
    rows += [[f"grant access to shared folder {i}", "access"] for i in range(30)]
    path = _write(tmp_path / "two.csv", ["t", "l"], rows)
    model = train_text_classifier(path, text="t", label="l")
    assert model.predict({"text": "paper jammed again"}).label == "hardware"
    assert model.predict({"text": "need folder access"}).label == "access"
    probs = model.probabilities(["paper jammed again", "need folder access"])
    assert probs.shape == (2, 2) and probs[0, model.classes.index("hardware")] > 0.5


def test_a_text_in_two_columns_is_read_joined_in_their_order(tmp_path: Path) -> None:
    """A ticket export with a title and a body column (Jira's Summary, Description): `--text Summary,Description`."""
    rows = [[f"printer {i}", f"paper jammed in tray {i % 3}", "hardware"] for i in range(30)]
    rows += [[f"access {i}", f"grant me the shared folder {i % 3}", "access"] for i in range(30)]
    rows += [["", "toner empty on the printer", "hardware"], ["folder", "", "access"]]
    path = _write(tmp_path / "tickets.csv", ["Summary", "Description", "Type"], rows)
    records = list(labelled_records(path, text="Summary, Description", label="Type"))
    assert records[0] == (2, "printer 0\npaper jammed in tray 0", "hardware")
    assert records[-2:] == [(62, "toner empty on the printer", "hardware"), (63, "folder", "access")]  # no empty half
    model = train_text_classifier(path, text="Summary,Description", label="Type")
    assert model.columns["text"] == "Summary,Description"
    both = {"Summary": "printer", "Description": "paper jammed again"}
    assert model.predict(both) == model.predict({"text": "printer\npaper jammed again"})
    assert model.text_keys(both) == ["Summary", "Description"] and model.text_of(both) == "printer\npaper jammed again"
    assert model.predict({"Description": "grant me the folder"}).label == "access"  # one column is enough
    with pytest.raises(TypeError, match=r'\{"Summary": str, "Description": str\}, the training columns'):
        model.predict({"title": "printer"})
    assert model.evaluate(path)["accuracy"] == 1.0
    # A column whose own name holds a comma is that column; a missing one is named.
    path = _write(tmp_path / "odd.csv", ["a,b", "label"], [["printer jammed", "hw"], ["folder access", "acc"]])
    assert next(iter(labelled_records(path, text="a,b", label="label"))) == (2, "printer jammed", "hw")
    with pytest.raises(TrainingDataError, match=r"no column 'Body'; its columns are 'Summary', 'Description'"):
        labelled_records(tmp_path / "tickets.csv", text="Summary,Body", label="Type")


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


def test_a_text_column_with_nothing_to_learn_is_refused_in_words(tmp_path: Path) -> None:
    blank = _write(tmp_path / "blank.csv", ["text", "label"], [["", "a"], ["", "b"]] * 3)
    with pytest.raises(TrainingDataError, match=r"nothing to learn from \(6 of 6 rows have no text"):
        train_text_classifier(blank, text="text", label="label")
    distinct = _write(tmp_path / "distinct.csv", ["text", "label"], [["a", "x"], ["b", "y"], ["c", "x"], ["d", "y"]])
    with pytest.raises(TrainingDataError, match="no word or character sequence found in two rows"):
        train_text_classifier(distinct, text="text", label="label")


def _three_topics() -> list[list[str]]:
    rows = [[f"printer jammed paper tray {i}", "hardware"] for i in range(20)]
    rows += [[f"grant access to shared folder {i}", "access"] for i in range(20)]
    rows += [[f"laptop purchase order approval {i}", "purchase"] for i in range(20)]
    return rows


@pytest.mark.parametrize(
    ("delimiter", "encoding", "read_as"),
    [
        (";", "utf-8", "utf-8-sig"),
        (",", "utf-8-sig", "utf-8-sig"),
        ("\t", "cp1252", "cp1252"),
        ("|", "latin-1", "latin-1"),
    ],
)
def test_spreadsheet_exports_read_whatever_their_delimiter_and_encoding(
    tmp_path: Path, delimiter: str, encoding: str, read_as: str
) -> None:
    rows = _three_topics()
    # Needs quoting, is not ASCII; a Latin-1 control character (0x81) that Windows-1252 does not define.
    rows[0][0] = "imprimante bloquée, papier; écran " + ("\x81" if encoding == "latin-1" else "\u2013") + rows[0][0]
    path = tmp_path / "export.csv"
    with path.open("w", encoding=encoding, newline="") as stream:
        writer = csv.writer(stream, delimiter=delimiter)
        writer.writerow(["Ticket Text", "Team"])
        writer.writerows(rows)
        writer.writerow(["no label on this row", ""])
    model = train_text_classifier(path, text="ticket text", label="team")  # names match ignoring case
    assert model.params["file"] == {"encoding": read_as, "delimiter": delimiter, "rows_without_label": 1}
    assert model.params["n_train"] == 60
    assert model.predict({"text": "paper jammed in the printer"}).label == "hardware"
    assert model.evaluate(path)["n"] == 60


def test_rare_classes_train_and_are_reported(tmp_path: Path) -> None:
    rows = [*_three_topics(), ["reset my token please", "security"], ["token expired again", "security"]]
    rows.append(["coffee machine broken", "facilities"])
    path = _write(tmp_path / "rare.csv", ["text", "label"], rows)
    model = train_text_classifier(path, text="text", label="label")
    assert model.params["inner_folds"] == 3  # one rare class does not thin every fold
    assert model.metrics["rare_classes"] == {"facilities": 1, "security": 2}
    assert "facilities" in model.metrics["warnings"][0]
    assert set(model.classes) == {"access", "facilities", "hardware", "purchase", "security"}
    only_once = _write(tmp_path / "once.csv", ["text", "label"], [["a b", "x"], ["c d", "y"], ["e f", "z"]])
    with pytest.raises(TrainingDataError, match="every label occurs once"):
        train_text_classifier(only_once, text="text", label="label")


def test_a_class_of_one_ticket_leaves_the_other_figures_alone(
    slices: tuple[Path, Path], model: TextClassifier, tmp_path: Path
) -> None:
    """Its fold's base models never saw it; their placeholder scores must not throw the combiner off."""
    with slices[0].open(newline="") as stream:
        rows = list(csv.reader(stream))
    rows[1][1] = "Singleton"
    path = _write(tmp_path / "one-off.csv", rows[0], rows[1:])
    odd = train_text_classifier(path, text="body", label="topic", seed=0)
    assert odd.metrics["rare_classes"] == {"Singleton": 1}
    assert odd.metrics["accuracy"] == pytest.approx(model.metrics["accuracy"], abs=0.01)


def test_unreadable_gzip_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(gzip.compress(b"text,label\n" * 100)[:40])
    with pytest.raises(TrainingDataError, match="cannot read"):
        train_text_classifier(path, text="text", label="label")
