"""D2 through the product: a ticket classified by a registered model through the decision service, one at a time.

Trains (or reuses) a text-classifier on the ticket file, registers it in a SQLite store, then measures, one ticket at
a time over tickets from the same file:

* ``predict``: the registered model alone (``TrainedModel.predict``), the D2 figure;
* ``evaluate``: the model's answer through ``DecisionService.evaluate`` (lookup of the latest version, cached model);
* ``decide``: the whole decision path a ``decide`` step takes: evaluate, route by policy, similar cases and
  knowledge (BM25), and the decision record written to the store.

Usage: python -m bench.decide_path [--data FILE] [--count 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import statistics
import tempfile
import time
from pathlib import Path

from opsrail.settings import Settings
from opsrail.wiring import build

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "it_tickets" / "tickets_train.csv.gz"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with gzip.open(args.data, "rt", encoding="utf-8") as handle:
        texts = [row["Document"] for _, row in zip(range(args.count), csv.DictReader(handle), strict=False)]
    with tempfile.TemporaryDirectory() as home:
        container = build(Settings(home=Path(home)), migrate=True)
        started = time.perf_counter()
        container.decisions.train_model(
            "text-classifier", args.data, {"text": "Document", "label": "Topic_group"}, name="ticket-topic"
        )
        train_seconds = time.perf_counter() - started
        print(json.dumps({"bench": "D2", "metric": "train_and_register_s", "value": round(train_seconds, 1)}))
        service = container.decisions
        service.evaluate("ticket-topic", {"text": texts[0]})  # loads and caches the model
        model, _, _ = service._model("ticket-topic", None)
        for name, call in (
            ("predict", lambda text: model.predict({"text": text})),
            ("evaluate", lambda text: service.evaluate("ticket-topic", {"text": text})),
            ("decide", lambda text: service.decide("ticket-topic", {"text": text})),
        ):
            p50s, p99s = [], []
            for _ in range(args.runs):
                latencies = []
                for text in texts:
                    begin = time.perf_counter()
                    call(text)
                    latencies.append((time.perf_counter() - begin) * 1000)
                p50s.append(percentile(latencies, 0.5))
                p99s.append(percentile(latencies, 0.99))
            for metric, values in (("p50_ms", p50s), ("p99_ms", p99s)):
                print(
                    json.dumps(
                        {
                            "bench": "D2",
                            "metric": f"{name}_{metric}",
                            "value": round(statistics.median(values), 3),
                            "runs": args.runs,
                            "tickets": len(texts),
                        }
                    )
                )
        container.close()


if __name__ == "__main__":
    main()
