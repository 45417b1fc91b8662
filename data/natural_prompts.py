"""The natural-language evaluation prompts: free phrasing composed from the pools in prompt_pools.py.

Each prompt puts one foreground noun phrase (a subject of one of seven categories) with an
action into a setting, through one of several sentence frames ("A red fox curled up asleep in a
misty pine forest at dawn", "In a quiet fishing harbour, a fishing boat bobbing gently", "A
sandy beach at sunrise with a surfer waxing a board", "A watercolor painting of ...", "...,
anime style"); about 45% carry an art style. The foreground word indices I_F are the words of
the noun phrase, counted as ``layeringdiff.pipeline.prompt.split_words`` counts them; the
background prompt is the setting's noun phrase (plus the style, when there is one).

Rules (checked here and in tests/test_eval_prompts.py): no two prompts share a (subject,
setting) pair and no two are equal after ``normalise``; at most ``MAX_SIZE_POSITION_FRACTION`` of
them name a size or a position (``SIZE_WORDS``, ``POSITION_WORDS``, ``POSITION_PHRASES``).
The composition is deterministic for a seed (``random.Random``, no other input).
"""

from __future__ import annotations

import hashlib
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from prompt_pools import SETTINGS, STYLES, SUBJECTS  # noqa: E402

from layeringdiff.pipeline.prompt import foreground_prompt, split_words  # noqa: E402

CATEGORIES = tuple(SUBJECTS)
MAX_SIZE_POSITION_FRACTION = 0.10
STYLED_FRACTION = 0.45

# words that state how large the foreground is or where it sits in the frame
SIZE_WORDS = frozenset(
    "tiny small little large big huge giant gigantic enormous massive miniature mini oversized colossal "
    "towering tall close-up closeup macro full-body".split()
)
POSITION_WORDS = frozenset(
    "left right center centre centered centred middle top bottom corner foreground background upper lower "
    "edge side above below beneath underneath under behind beside".split()
)
POSITION_PHRASES = ("in front of", "next to", "in the distance", "far away", "wide shot", "full body")

# sentence frames: {FG}/{fg} foreground noun phrase (capitalised / not), {act} action,
# {At}/{at} preposition + setting, {Np}/{np} the setting's noun phrase, {Prefix}, {suffix} the style
PLAIN_FRAMES = {
    "subject_first": "{FG} {act} {at}",
    "setting_first": "{At}, {fg} {act}",
    "setting_with": "{Np} with {fg} {act}",
    "subject_setting_action": "{FG} {at}, {act}",
    "there_is": "There is {fg} {act} {at}",
}
STYLED_FRAMES = {
    "style_suffix": "{FG} {act} {at}, {suffix}",
    "style_prefix": "{Prefix} {fg} {act} {at}",
    "style_prefix_setting": "{Prefix} {np} with {fg} {act}",
    "setting_first_suffix": "{At}, {fg} {act}, {suffix}",
}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def normalise(prompt: str) -> str:
    """Lower case, punctuation and articles dropped, words joined by single spaces (for near-duplicates)."""
    return " ".join(w for w in split_words(prompt.lower()) if w not in ("a", "an", "the"))


def names_size_or_position(prompt: str) -> bool:
    """True when ``prompt`` has a size or position word (also as part of a hyphenated word) or phrase."""
    words = split_words(prompt.lower())
    parts = {p for w in words for p in (w, *w.split("-"))}
    text = " " + " ".join(words) + " "
    return bool(parts & (SIZE_WORDS | POSITION_WORDS)) or any(f" {p} " in text for p in POSITION_PHRASES)


def frame_fits(frame: str, fg: str, np_: str, action: str) -> bool:
    """'... with {fg} {act}' frames read badly when the setting, subject or action has its own 'with'."""
    if "{np} with" in frame.lower():
        return " with " not in f" {np_} {fg} " and not action.startswith("with ")
    return True


def render(
    frame: str, fg: str, action: str, prep: str, np_: str, style: tuple | None
) -> tuple[str, list[int]]:
    """The prompt text of one frame and the word indices of ``fg`` in it."""
    at = f"{prep} {np_}"
    fields = dict(act=action, at=at, At=_cap(at), np=np_, Np=_cap(np_))
    if style:
        fields.update(Prefix=style[1], suffix=style[2])
    marker = "\x00"
    text = frame.format(FG=marker, fg=marker, **fields)
    before, after = text.split(marker)
    fg_text = _cap(fg) if not before else fg
    start, n = len(split_words(before)), len(split_words(fg_text))
    return before + fg_text + after, list(range(start, start + n))


class _Picker:
    """Least-used choice with a fixed shuffled tie order (so the result only depends on the seed)."""

    def __init__(self, rng: random.Random):
        self.rng, self.uses, self.order = rng, Counter(), {}

    def pick(self, options: list, key=lambda x: x):
        for o in options:
            self.order.setdefault(key(o), self.rng.random())
        best = min(options, key=lambda o: (self.uses[key(o)], self.order[key(o)]))
        self.uses[key(best)] += 1
        return best


def _compose(category: str, pickers: dict, used_pairs: set, styled: bool) -> dict:
    subjects = [
        s
        for s in SUBJECTS[category]
        if any((s[0], np_) not in used_pairs for t in s[2] for _, np_ in SETTINGS[t])
    ]
    if not subjects:
        raise ValueError(f"category {category}: every (subject, setting) pair is used")
    fg, actions, tags = pickers["subject"].pick(subjects, key=lambda s: s[0])
    action = pickers["action"].pick(actions, key=lambda a: (fg, a))
    free = [(p, np_) for t in tags for p, np_ in SETTINGS[t] if (fg, np_) not in used_pairs]
    prep, np_ = pickers["setting"].pick(free, key=lambda s: s[1])
    used_pairs.add((fg, np_))
    style = pickers["style"].pick(STYLES, key=lambda s: s[0]) if styled else None
    frames = STYLED_FRAMES if styled else PLAIN_FRAMES
    name = pickers["frame"].pick([f for f in frames if frame_fits(frames[f], fg, np_, action)])
    prompt, indices = render(frames[name], fg, action, prep, np_, style)
    return {
        "prompt": prompt,
        "foreground_indices": indices,
        "fg_prompt": foreground_prompt(prompt, indices),
        "bg_prompt": f"{np_}, {style[2]}" if style else np_,
        "category": category,
        "style": style[0] if style else None,
    }


def make_natural_prompts(num: int = 572, seed: int = 0) -> list[dict]:
    """``num`` prompt records, categories in turn (every prefix is balanced), deterministic for ``seed``."""
    rng = random.Random(seed)
    pickers = {k: _Picker(rng) for k in ("subject", "action", "setting", "style", "frame")}
    used_pairs: set = set()
    out = []
    for i in range(num):
        rec = {"id": f"n{i:04d}"}  # n: never the id of a templated prompt (p0000...)
        rec.update(
            _compose(CATEGORIES[i % len(CATEGORIES)], pickers, used_pairs, rng.random() < STYLED_FRACTION)
        )
        rec["seed"] = int(hashlib.sha1(rec["id"].encode()).hexdigest()[:8], 16) % 2**31
        out.append(rec)
    check(out)
    return out


def check(records: list[dict]) -> None:
    """Raise ValueError when the set breaks a rule (duplicates, indices, size/position share)."""
    seen: dict[str, str] = {}
    for r in records:
        key = normalise(r["prompt"])
        if key in seen:
            raise ValueError(f"{r['id']} repeats {seen[key]}: {r['prompt']!r}")
        seen[key] = r["id"]
        if foreground_prompt(r["prompt"], r["foreground_indices"]) != r["fg_prompt"]:
            raise ValueError(f"{r['id']}: foreground_indices do not select {r['fg_prompt']!r}")
    flagged = sum(names_size_or_position(r["prompt"]) for r in records)
    if flagged > MAX_SIZE_POSITION_FRACTION * len(records):
        raise ValueError(f"{flagged} of {len(records)} prompts name a size or a position")


def study_subset(records: list[dict], num: int = 15) -> list[dict]:
    """The user-study prompts: ``records[i * step]`` for i < num, step = len(records) // num (38 for 572).

    With the categories in turn (7 of them) and a step of 38 (= 3 mod 7), the picks walk through
    every category: 15 prompts cover all seven, two or three each.
    """
    step = len(records) // num
    return [records[i * step] for i in range(num)]


if __name__ == "__main__":
    for r in make_natural_prompts():
        flag = "*" if names_size_or_position(r["prompt"]) else " "
        print(flag, r["id"], r["prompt"], "|", r["fg_prompt"], "|", r["bg_prompt"])
    sys.exit(0)
