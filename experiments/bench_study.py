"""Throughput of the study server under concurrent participants (real threaded server, SQLite WAL).

    .venv/bin/python experiments/bench_study.py [--participants 8] [--items 6]

Each participant thread posts every answer of its items to /api/rate, one HTTP request per
answer, as the page's autosave does. Prints answers/s, the per-answer latency (median and p95),
and the single-participant figure measured in the same run as the baseline.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine_line  # noqa: E402

from layeringdiff.study import CRITERIA, RATED_IMAGES  # noqa: E402
from layeringdiff.study.app import create_app  # noqa: E402
from layeringdiff.study.demo import build_demo_study  # noqa: E402


def session(base: str, token: str, items: list[str], latencies: list[float]) -> None:
    for item in items:
        for layer in RATED_IMAGES:
            for crit in CRITERIA:
                body = json.dumps(dict(token=token, item=item, layer=layer, criterion=crit, score=3)).encode()
                req = urllib.request.Request(base + "/api/rate", body, {"Content-Type": "application/json"})
                t0 = time.perf_counter()
                with urllib.request.urlopen(req, timeout=60) as resp:
                    assert json.load(resp)["saved"]
                latencies.append(time.perf_counter() - t0)


def measure(root: Path, demo: dict, n_participants: int, items: int) -> tuple[float, float, float, int]:
    app = create_app(
        dict(methods=demo["methods"], db=str(root / f"bench{n_participants}.db"), participants=n_participants)
    )
    study = app.extensions["study"]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    latencies: list[float] = []
    threads = [
        threading.Thread(target=session, args=(base, tok, study.order(tok)[:items], latencies))
        for tok in study.participants
    ]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    server.shutdown()
    stored = sum(len(a) for tok in study.participants for a in study.answers(tok).values())
    lat = sorted(latencies)
    return len(lat) / wall, statistics.median(lat) * 1e3, lat[int(0.95 * (len(lat) - 1))] * 1e3, stored


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, default=8)
    parser.add_argument("--items", type=int, default=6)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no per-request log lines
    print(machine_line({"werkzeug": "a thread per request"}))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        demo = build_demo_study(root / "outputs", ["a", "b"], num_examples=max(3, args.items), size=16)
        expected = {1: args.items * 6, args.participants: args.participants * args.items * 6}
        for n in (1, args.participants):
            rate, p50, p95, stored = measure(root, demo, n, args.items)
            assert stored == expected[n], (stored, expected[n])
            print(
                f"participants={n:2d}: {rate:7.1f} answers/s, latency median {p50:.1f} ms, p95 {p95:.1f} ms, stored {stored}"
            )


if __name__ == "__main__":
    main()
