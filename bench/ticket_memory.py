"""Time and peak memory of ticket training on the ticket file, or on the file repeated to make a larger one.

``--copies N`` repeats the file N times, the words ``v1`` … ``vN-1`` appended to the copies (so no two tickets are
equal). Peak memory is sampled from ``VmRSS`` every 10 ms on a background thread and reported above the memory held
once the texts are read; the NB-SVM's worker processes are not included (see ADR 0017).
Usage: python -m bench.ticket_memory [--data PATH] [--copies 1] [--stage vectorise|train|both]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

from opsrail.ml._labelled_csv import read_labelled_csv
from opsrail.ml._text import fit_text_classifier
from opsrail.ml._text_features import TextFeatures

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "it_tickets" / "tickets_train.csv.gz"


def resident_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PeakSampler:
    """The largest resident size seen since ``reset``, sampled every 10 ms."""

    def __init__(self) -> None:
        self.peak = resident_mb()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while True:
            self.peak = max(self.peak, resident_mb())
            time.sleep(0.01)

    def reset(self) -> float:
        self.peak = resident_mb()
        return self.peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--stage", choices=("vectorise", "train", "both"), default="both")
    args = parser.parse_args()
    texts, labels = read_labelled_csv(args.data, text="Document", label="Topic_group")
    texts = [text if copy == 0 else f"{text} v{copy}" for copy in range(args.copies) for text in texts]
    labels = labels * args.copies
    sampler = PeakSampler()
    common = {"tickets": len(texts), "copies": args.copies}
    if args.stage in ("vectorise", "both"):
        base = sampler.reset()
        started = time.perf_counter()
        matrix = TextFeatures().fit_transform(texts)
        seconds = time.perf_counter() - started
        size = (matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes) / 2**20
        print(
            json.dumps(
                {
                    "stage": "vectorise",
                    "seconds": round(seconds, 2),
                    "peak_mb_above_texts": round(sampler.peak - base),
                    "matrix_mb": round(size),
                    **common,
                }
            ),
            flush=True,
        )
        del matrix
    if args.stage in ("train", "both"):
        base = sampler.reset()
        started = time.perf_counter()
        fit_text_classifier(texts, labels)
        seconds = time.perf_counter() - started
        print(
            json.dumps(
                {
                    "stage": "train",
                    "seconds": round(seconds, 1),
                    "peak_mb_above_texts": round(sampler.peak - base),
                    "peak_mb": round(sampler.peak),
                    **common,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
