"""Ticket training time with many classes: the ticket file with each topic split eight ways by its first word.

64 classes instead of 8 (the split carries little signal, so accuracy is low; the figure of interest is time, and
where it goes). Prints the seconds at the start of each training stage, then the totals.
Usage: python -m bench.q_tickets_many_classes [--data PATH] [--ways 8]
"""

from __future__ import annotations

import argparse
import json
import time
import zlib
from pathlib import Path

from opsrail.ml._labelled_csv import read_labelled_csv
from opsrail.ml._text import fit_text_classifier

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "it_tickets" / "tickets_train.csv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--ways", type=int, default=8)
    args = parser.parse_args()
    texts, topics = read_labelled_csv(args.data, text="Document", label="Topic_group")
    labels = [
        f"{topic}/{zlib.crc32((text.split() or [''])[0].encode()) % args.ways}"
        for text, topic in zip(texts, topics, strict=True)
    ]
    started = time.perf_counter()
    stages: dict[str, float] = {}

    def progress(stage: str, _share: float) -> None:
        stages.setdefault(stage.split(" ")[0] if stage.startswith("fit fold") else stage, time.perf_counter())

    model = fit_text_classifier(texts, labels, progress=progress)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "classes": len(model.classes),
                "rows": len(texts),
                "train_seconds": round(seconds, 1),
                "stage_starts_seconds": {name: round(at - started, 1) for name, at in stages.items()},
                "inner_accuracy": model.metrics["accuracy"],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
