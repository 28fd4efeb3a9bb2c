"""K1: knowledge search over real help-desk tickets: index build time, query latency, and topic precision@5.

Builds a ``KnowledgeIndex`` over the 38,269 labelled tickets (``Document`` column), then runs ``--queries`` tickets
picked at random (fixed seed) as queries, each excluding itself (leave-one-out), and reports how many of the 5
hits share the query ticket's topic label, next to the rate random hits would reach (sum of squared topic
shares). Latency is measured twice: whole ticket texts as queries, and their first 8 words (a typed question).
Usage: python -m bench.knowledge_search [--runs 5] [--queries 1000] [--tickets PATH]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import pickle
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np

from opsrail.knowledge import Document, KnowledgeIndex

TICKETS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "it_tickets" / "tickets_train.csv.gz"


def load(path: Path) -> list[tuple[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return [(row["Document"], row["Topic_group"]) for row in csv.DictReader(handle)]


def documents(tickets: list[tuple[str, str]]) -> list[Document]:
    return [
        Document(id=f"t{i}", kind="case", title="", text=text, source=f"case:t{i}", metadata={"topic": topic})
        for i, (text, topic) in enumerate(tickets)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="index builds to take the median of")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--tickets", type=Path, default=TICKETS)
    args = parser.parse_args()

    tickets = load(args.tickets)
    docs = documents(tickets)
    builds = []
    index = KnowledgeIndex()
    for _ in range(args.runs):
        start = time.perf_counter()
        index = KnowledgeIndex.build(docs)
        builds.append(time.perf_counter() - start)
    pickled = pickle.dumps(index)

    rng = np.random.default_rng(20261122)
    picks = [int(i) for i in rng.choice(len(tickets), size=min(args.queries, len(tickets)), replace=False)]
    index.search(tickets[picks[0]][0])  # warm-up
    full_ms, short_ms, precisions = [], [], []
    for i in picks:
        text, topic = tickets[i]
        start = time.perf_counter()
        hits = index.search(text, k=5, exclude_ids={f"t{i}"})
        full_ms.append((time.perf_counter() - start) * 1000)
        precisions.append(sum(hit.metadata["topic"] == topic for hit in hits) / 5)
        question = " ".join(text.split()[:8])
        start = time.perf_counter()
        index.search(question, k=5, exclude_ids={f"t{i}"})
        short_ms.append((time.perf_counter() - start) * 1000)
    shares = Counter(topic for _, topic in tickets)
    chance = sum((count / len(tickets)) ** 2 for count in shares.values())
    precision = statistics.fmean(precisions)

    common = {"bench": "K1", "documents": len(docs), "queries": len(picks)}
    figures = [
        {"metric": "index_build_s", "value": round(statistics.median(builds), 2), "runs": args.runs},
        {"metric": "index_pickle_mb", "value": round(len(pickled) / 1e6, 1)},
        {
            "metric": "query_ms_whole_ticket",
            "value": round(float(np.percentile(full_ms, 50)), 2),
            "p99": round(float(np.percentile(full_ms, 99)), 2),
            "mean_query_words": round(statistics.fmean(len(tickets[i][0].split()) for i in picks), 1),
        },
        {
            "metric": "query_ms_first_8_words",
            "value": round(float(np.percentile(short_ms, 50)), 3),
            "p99": round(float(np.percentile(short_ms, 99)), 3),
        },
        {
            "metric": "topic_precision_at_5_leave_one_out",
            "value": round(precision, 3),
            "peer": "random hits (sum of squared topic shares)",
            "peer_value": round(chance, 3),
            "ratio": round(precision / chance, 2),
        },
    ]
    for figure in figures:
        print(json.dumps({**common, **figure}))


if __name__ == "__main__":
    main()
