"""The bundled prompt sets are current, distinct and their foreground indices select T_F."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from layeringdiff.pipeline.prompt import foreground_prompt

ROOT = Path(__file__).resolve().parents[1]


def _read(name):
    return [json.loads(line) for line in (ROOT / "data" / "prompts" / name).read_text().splitlines()]


def test_prompt_files_are_what_the_script_writes():
    result = subprocess.run(
        [sys.executable, str(ROOT / "data" / "make_prompts.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_prompt_triplets():
    records = _read("prompts572.jsonl")
    assert len(records) == 572 and len({r["prompt"] for r in records}) == 572
    assert len({r["id"] for r in records}) == 572
    for r in records:
        assert foreground_prompt(r["prompt"], r["foreground_indices"]) == r["fg_prompt"]
        assert r["prompt"].endswith(r["bg_prompt"])
    assert {r["category"] for r in records} == {"animal", "person", "object", "transparent"}
    # balanced design: every category, (scale, position) cell and scene equally often (+-1 per category)
    for field, spread in (("category", 0), (("scale", "position"), 1), ("bg_prompt", 2)):
        keys = field if isinstance(field, tuple) else (field,)
        counts = Counter(tuple(r[k] for k in keys) for r in records)
        assert max(counts.values()) - min(counts.values()) <= spread, (field, counts)
    assert len(Counter((r["scale"], r["position"]) for r in records)) == 18
    quick = _read("quick16.jsonl")
    assert Counter(r["category"] for r in quick) == dict.fromkeys(
        ("animal", "person", "object", "transparent"), 4
    )
    assert len({(r["scale"], r["position"]) for r in quick}) == 16  # 16 different (scale, position) cells
    assert _read("quick16.jsonl") == records[:16]
