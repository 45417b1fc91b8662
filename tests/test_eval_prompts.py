"""The bundled prompt sets are current, distinct and their foreground indices select T_F."""

import json
import subprocess
import sys
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
    assert _read("quick16.jsonl") == records[:16]
