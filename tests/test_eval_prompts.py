"""The bundled prompt sets are current, distinct and their foreground indices select T_F."""

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from itertools import combinations
from pathlib import Path

import pytest

from layeringdiff.pipeline.prompt import foreground_prompt, split_words

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = {"animal", "person", "object", "vehicle", "food", "plant", "transparent"}
FIELDS = ["id", "prompt", "foreground_indices", "fg_prompt", "bg_prompt", "category", "style", "seed"]


@pytest.fixture(scope="module")
def natural():
    spec = importlib.util.spec_from_file_location("natural_prompts", ROOT / "data" / "natural_prompts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(name):
    return [json.loads(line) for line in (ROOT / "data" / "prompts" / name).read_text().splitlines()]


def test_prompt_files_are_what_the_script_writes():
    result = subprocess.run(
        [sys.executable, str(ROOT / "data" / "make_prompts.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_templated_prompt_triplets():
    records = _read("prompts572_templated.jsonl")
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
    quick = records[:16]  # a balanced prefix: 4 per category, 16 different (scale, position) cells
    assert Counter(r["category"] for r in quick) == dict.fromkeys(
        ("animal", "person", "object", "transparent"), 4
    )
    assert len({(r["scale"], r["position"]) for r in quick}) == 16


def test_natural_prompts_schema_indices_and_balance():
    records = _read("prompts572.jsonl")
    assert len(records) == 572 and [r["id"] for r in records] == [f"n{i:04d}" for i in range(572)]
    # an output folder of the templated set is never looked up as a natural prompt, or back
    assert not {r["id"] for r in records} & {r["id"] for r in _read("prompts572_templated.jsonl")}
    for r in records:
        assert list(r) == FIELDS, r["id"]
        assert r["category"] in CATEGORIES and isinstance(r["seed"], int) and 0 <= r["seed"] < 2**31
        ix = r["foreground_indices"]
        assert ix == list(range(ix[0], ix[0] + len(ix))), r["id"]  # one contiguous phrase
        assert foreground_prompt(r["prompt"], ix) == r["fg_prompt"], r["id"]
        # a noun phrase: starts with an article, and is neither the whole prompt nor the background
        assert r["fg_prompt"].split()[0].lower() in ("a", "an"), r["fg_prompt"]
        assert (
            len(ix) < len(split_words(r["prompt"])) and r["fg_prompt"].lower() not in r["bg_prompt"].lower()
        )
        # the background prompt is the setting as written in the prompt (plus the style, if any)
        assert r["bg_prompt"].split(", ")[0].lower() in r["prompt"].lower(), r["id"]
    counts = Counter(r["category"] for r in records)
    assert set(counts) == CATEGORIES and max(counts.values()) - min(counts.values()) <= 1
    styled = sum(r["style"] is not None for r in records)
    assert 0.3 * 572 < styled < 0.6 * 572 and len({r["style"] for r in records}) >= 12


def test_natural_prompts_are_distinct_and_not_near_duplicates(natural):
    records = _read("prompts572.jsonl")
    assert len({natural.normalise(r["prompt"]) for r in records}) == 572
    assert len({(r["fg_prompt"].lower(), r["bg_prompt"].split(", ")[0]) for r in records}) == 572
    # no two prompts share most of their content words
    stop = {"a", "an", "the", "in", "on", "of", "with", "at", "by", "there", "is"}
    bags = [frozenset(split_words(r["prompt"].lower())) - stop for r in records]
    worst = max(len(a & b) / len(a | b) for a, b in combinations(bags, 2))
    assert worst < 0.8, worst


def test_at_most_ten_percent_name_a_size_or_position(natural):
    flags = [natural.names_size_or_position(r["prompt"]) for r in _read("prompts572.jsonl")]
    assert sum(flags) <= 0.10 * len(flags)
    # the detector itself: every templated prompt names a position ("on the left of", "in front of"
    # ...), and ordinary phrasing passes
    templated = _read("prompts572_templated.jsonl")
    assert all(natural.names_size_or_position(r["prompt"]) for r in templated)
    for text, named in [
        ("A tiny bird", True),
        ("A cat on the left of a sofa", True),
        ("A dog in front of a barn", True),
        ("A close-up photo of a rose", True),
        ("A lighthouse on a cliff at the top-right", True),
        ("A red fox curled up asleep in a misty pine forest", False),
        ("A bright kitchen with flowers", False),
    ]:
        assert natural.names_size_or_position(text) is named, text


def test_quick_and_study_subsets_come_from_the_natural_set(natural):
    records = _read("prompts572.jsonl")
    quick = _read("quick16.jsonl")
    assert quick == records[:16] and {r["category"] for r in quick} == CATEGORIES
    study = _read("study15.jsonl")
    assert study == [records[38 * i] for i in range(15)]  # the documented rule
    assert study == natural.study_subset(records)
    counts = Counter(r["category"] for r in study)
    assert set(counts) == CATEGORIES and min(counts.values()) >= 2


def test_natural_prompts_are_deterministic_and_seed_dependent(natural):
    assert natural.make_natural_prompts(40, seed=0) == natural.make_natural_prompts(40, seed=0)
    assert natural.make_natural_prompts(40, seed=0) != natural.make_natural_prompts(40, seed=1)
    assert natural.make_natural_prompts() == _read("prompts572.jsonl")
