"""Write the evaluation prompt sets (data/prompts/) deterministically.

    python data/make_prompts.py                  # rewrites every file below
    python data/make_prompts.py --check          # exit 1 if a file differs from what this script writes

- ``prompts572.jsonl`` (default of ``eval=generate`` and Tables 1-2): 572 prompts in natural phrasing,
  composed by ``natural_prompts.py`` from the hand-written pools in ``prompt_pools.py``;
- ``quick16.jsonl``: its first 16 (every category at least twice);
- ``study15.jsonl``: the user-study prompts, ``natural_prompts.study_subset`` (every 38th prompt);
- ``prompts572_templated.jsonl``: the earlier template over explicit scale and position words
  (``make_prompts`` below), kept as an option (``eval.prompts=...``).

Each templated line is one triplet: the composite prompt T, the foreground prompt T_F (the words of T at
``foreground_indices``, a leading run of words), and a background-only prompt, e.g.
``{"id": "p0000", "prompt": "A small red fox sitting on the left of a snowy pine forest at dawn",
"foreground_indices": [0, 1, 2, 3, 4], "fg_prompt": "A small red fox sitting",
"bg_prompt": "a snowy pine forest at dawn", "category": "animal", "scale": "small",
"position": "left", "seed": 1234}``. The file is also a batch file for ``infer.py prompts=FILE``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import sys
from pathlib import Path

from layeringdiff.files import atomic_write_bytes

OUT = Path(__file__).resolve().parent / "prompts"
NUM_PROMPTS, NUM_QUICK, NUM_STUDY, SEED = 572, 16, 15, 0

# subject phrases (without article/scale) and the actions that suit them, per category
SUBJECTS = {
    "animal": [
        ("red fox", ["sitting", "running", "sleeping"]),
        ("golden retriever", ["sitting", "jumping", "lying"]),
        ("white horse", ["standing", "galloping"]),
        ("tabby cat", ["sitting", "stretching", "sleeping"]),
        ("brown owl", ["perching", "flying"]),
        ("bird", ["flying", "perching"]),
        ("elephant", ["walking", "standing"]),
        ("green frog", ["sitting", "jumping"]),
        ("panda", ["eating", "sitting"]),
        ("butterfly", ["flying", "resting"]),
    ],
    "person": [
        ("young woman", ["walking", "standing", "smiling"]),
        ("old man", ["reading", "sitting", "walking"]),
        ("child", ["playing", "running", "laughing"]),
        ("dancer", ["dancing", "leaping"]),
        ("astronaut", ["floating", "standing", "walking"]),
        ("chef", ["cooking", "standing"]),
        ("skateboarder", ["jumping", "riding"]),
        ("violinist", ["playing", "standing"]),
    ],
    "object": [
        ("vintage red car", ["parked", "driving"]),
        ("wooden chair", ["standing", "placed"]),
        ("teddy bear", ["sitting", "lying"]),
        ("bicycle", ["leaning", "parked"]),
        ("potted cactus", ["standing", "placed"]),
        ("hot air balloon", ["floating", "rising"]),
        ("leather backpack", ["lying", "placed"]),
        ("sailboat", ["floating", "sailing"]),
        ("robot", ["standing", "walking"]),
    ],
    "transparent": [
        ("glass of water", ["standing", "placed"]),
        ("crystal vase", ["standing", "placed"]),
        ("soap bubble", ["floating", "drifting"]),
        ("light bulb", ["glowing", "hanging"]),
        ("wine glass", ["standing", "placed"]),
        ("glass bottle", ["standing", "lying"]),
        ("jellyfish", ["floating", "drifting"]),
        ("diamond ring", ["lying", "sparkling"]),
    ],
}
SCALES = {"small": ["A small", "A tiny"], "medium": ["A"], "large": ["A large", "A huge"]}
POSITIONS = {
    "left": "on the left of",
    "right": "on the right of",
    "center": "in the middle of",
    "top": "at the top of",
    "bottom": "at the bottom of",
    "front": "in front of",
}
SCENES = [
    "a snowy pine forest at dawn",
    "a sunny beach with palm trees",
    "a busy city street at night",
    "a quiet library with wooden shelves",
    "the mountains at sunset",
    "a green meadow with wildflowers",
    "a modern kitchen with marble counters",
    "a misty lake in autumn",
    "a desert with red sand dunes",
    "a cozy living room by the fireplace",
    "an underwater coral reef",
    "a rainy park with benches",
    "a field of sunflowers under a blue sky",
    "a neon-lit alley in the rain",
    "a stone castle courtyard",
    "a wooden pier on a calm sea",
]


def triplet(
    category: str, subject: str, action: str, scale: str, article: str, position: str, scene: str
) -> dict:
    if article == "A" and subject[0] in "aeiou":
        article = "An"
    fg = f"{article} {subject} {action}"
    prompt = f"{fg} {POSITIONS[position]} {scene}"
    n_fg = len(fg.split())
    return {
        "prompt": prompt,
        "foreground_indices": list(range(n_fg)),
        "fg_prompt": fg,
        "bg_prompt": scene,
        "category": category,
        "scale": scale,
        "position": position,
    }


def _balanced(combos: list[tuple], num: int, order: list[tuple[str, str]]) -> list[tuple]:
    """``num`` combos taking (scale, position) cells in turn, each pick the least-used scene and subject.

    Every (scale, position) cell is used equally often (+-1) and scenes and subjects stay within a
    few uses of each other, so every prefix of the list is balanced too.
    """
    cells: dict[tuple[str, str], list[tuple]] = {cell: [] for cell in order}
    for c in combos:
        cells[(c[3], c[5])].append(c)
    scene_uses: dict[str, int] = dict.fromkeys(SCENES, 0)
    subject_uses: dict[str, int] = {}
    chosen: list[tuple] = []
    while len(chosen) < num and any(cells.values()):
        for cell in order:
            if len(chosen) == num or not cells[cell]:
                continue
            pool = cells[cell]  # shuffled: ties go to the earliest
            best = min(
                range(len(pool)), key=lambda i: (scene_uses[pool[i][6]], subject_uses.get(pool[i][1], 0))
            )
            c = pool.pop(best)
            scene_uses[c[6]] += 1
            subject_uses[c[1]] = subject_uses.get(c[1], 0) + 1
            chosen.append(c)
    return chosen


def make_prompts(num: int = NUM_PROMPTS, seed: int = SEED) -> list[dict]:
    """``num`` distinct triplets, balanced over categories, scales, positions and scenes, deterministic for ``seed``."""
    rng = random.Random(seed)
    per_category = {}
    quota = {c: num // len(SUBJECTS) + (i < num % len(SUBJECTS)) for i, c in enumerate(SUBJECTS)}
    # one shuffled order of the (scale, position) cells, rotated per category, so the first
    # picks of the categories fall in different cells (the quick split covers 16 of the 18)
    cells = [(scale, pos) for scale in SCALES for pos in POSITIONS]
    rng.shuffle(cells)
    step = len(cells) // len(SUBJECTS)
    for n, (category, subjects) in enumerate(SUBJECTS.items()):
        combos = [
            (category, s, a, scale, art, pos, scene)
            for (s, actions) in subjects
            for a in actions
            for scale, arts in SCALES.items()
            for art in arts[:1]
            for pos in POSITIONS
            for scene in SCENES
        ]
        rng.shuffle(combos)
        order = cells[n * step :] + cells[: n * step]
        per_category[category] = _balanced(combos, quota[category], order)
    # round-robin over categories so every prefix (and the quick split) is balanced
    chosen = [c for group in itertools.zip_longest(*per_category.values()) for c in group if c][:num]
    out = []
    for i, combo in enumerate(chosen):
        category, subject, action, scale, _, position, scene = combo
        article = rng.choice(SCALES[scale])
        rec = {"id": f"p{i:04d}", **triplet(category, subject, action, scale, article, position, scene)}
        rec["seed"] = int(hashlib.sha1(rec["id"].encode()).hexdigest()[:8], 16) % 2**31
        out.append(rec)
    return out


def render(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="only compare with the files on disk")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # natural_prompts.py lies beside this file
    from natural_prompts import make_natural_prompts, study_subset

    natural = make_natural_prompts(NUM_PROMPTS, SEED)
    files = {
        "prompts572.jsonl": render(natural),
        "quick16.jsonl": render(natural[:NUM_QUICK]),
        "study15.jsonl": render(study_subset(natural, NUM_STUDY)),
        "prompts572_templated.jsonl": render(make_prompts()),
    }
    status = 0
    for name, text in files.items():
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_text() != text:
                print(f"{path} is out of date: run python data/make_prompts.py", file=sys.stderr)
                status = 1
        else:
            atomic_write_bytes(path, text.encode())
            print(f"wrote {path} ({text.count(chr(10))} prompts)")
    return status


if __name__ == "__main__":
    sys.exit(main())
