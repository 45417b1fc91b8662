"""What a study shows: the examples every method produced, their prompts, and blinded ids.

A method is a folder of decomposition outputs in the docs/architecture.md layout: one sub-folder per example
(found at any depth by its ``composite.png``) holding ``foreground.png`` (RGBA; for multi-layer
outputs the top-most ``foreground_1.png``), ``background.png``, ``composite.png`` and
``meta.json``. An example is identified by its folder path relative to the method folder, so the
same prompt run by two methods lands in folders with the same relative path.

Participants never see method names: pages and image URLs use ``item_id`` = HMAC(secret,
example, method) and the database stores ``method_id`` = HMAC(secret, method); the secret stays
on the server (in the database).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from layeringdiff.errors import UserError

log = logging.getLogger(__name__)

PROMPT_KEYS = ("prompt", "composite_prompt", "text", "caption")
FG_PROMPT_KEYS = ("foreground_prompt", "fg_prompt")
BG_PROMPT_KEYS = ("background_prompt", "bg_prompt")
ID_KEYS = ("key", "id", "name", "example", "out", "folder")


class StudySetupError(UserError, ValueError):
    """A study cannot start: a missing folder, no common example, a missing prompt."""


@dataclass(frozen=True)
class Example:
    """One example shown for every method. Prompts: composite, foreground, background (may be "")."""

    key: str
    prompt: str
    foreground_prompt: str = ""
    background_prompt: str = ""


@dataclass(frozen=True)
class Item:
    """One (example, method) pair a participant rates, and the files of its three layers."""

    item_id: str
    example: str
    method: str
    method_id: str
    files: Mapping[str, Path] = field(hash=False, compare=False)


@dataclass
class Catalog:
    """Examples (sorted by key), items by blinded id, and blinded method ids by method name."""

    examples: dict[str, Example]
    items: dict[str, Item]
    method_ids: dict[str, str]


class Blinder:
    """Opaque, stable ids derived from a server-side secret with HMAC-SHA256.

    Args:
        secret: the study's key; the same secret gives the same ids after a restart.
    """

    def __init__(self, secret: str):
        if not secret:
            raise StudySetupError("the study secret must be a non-empty string")
        self._key = secret.encode()

    def _digest(self, *parts: str) -> str:
        return hmac.new(self._key, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()

    def method_id(self, method: str) -> str:
        return "m" + self._digest("method", method)[:11]

    def item_id(self, example: str, method: str) -> str:
        return self._digest("item", example, method)[:24]

    def participant_token(self, label: str) -> str:
        return self._digest("participant", label)[:24]


def _first(record: Mapping, keys: tuple[str, ...]) -> str:
    for k in keys:
        v = record.get(k)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return ""


def layer_files(folder: Path) -> dict[str, Path] | None:
    """The three layer files of one output folder, or None when one is missing."""
    fg = folder / "foreground.png"
    if not fg.is_file():
        fg = folder / "foreground_1.png"  # multi-layer output: rate the top-most foreground
    files = {"foreground": fg, "background": folder / "background.png", "composite": folder / "composite.png"}
    return files if all(p.is_file() for p in files.values()) else None


def scan_method(folder: str | Path) -> dict[str, Path]:
    """Example key (relative folder path, '/'-separated) -> output folder, for one method.

    Args:
        folder: a method's output root.

    Raises:
        StudySetupError: the folder is missing or holds no complete output folder.
    """
    root = Path(folder)
    if not root.is_dir():
        raise StudySetupError(f"method folder not found: {root}")
    found = {}
    for comp in sorted(root.rglob("composite.png")):
        out = comp.parent
        if any(part.startswith(".") for part in out.relative_to(root).parts):
            continue  # half-written outputs live in hidden temporary folders
        if layer_files(out) is None:
            log.warning("skipping %s: foreground.png or background.png missing", out)
            continue
        key = out.relative_to(root).as_posix()
        found[key if key != "." else out.name] = out
    if not found:
        raise StudySetupError(
            f"no output folder (with composite.png, foreground.png, background.png) under {root}"
        )
    return found


def load_prompt_file(path: str | Path) -> dict[str, dict]:
    """Read a prompt file into ``{key: record}`` where a record holds at least ``prompt``.

    Accepted: ``.json`` (a ``{key: prompt-or-record}`` object or a list of records), ``.jsonl``,
    ``.csv``/``.tsv`` with a header, or ``.txt`` with one prompt per line. A record's key is its
    first field among key/id/name/example/out/folder, else its 0-based position.

    Args:
        path: the prompt file.

    Raises:
        StudySetupError: the file is missing or unreadable.
    """
    p = Path(path)
    if not p.is_file():
        raise StudySetupError(f"prompt file not found: {p}")
    suffix = p.suffix.lower()
    try:
        text = p.read_text(encoding="utf-8")
        if suffix == ".json":
            data = json.loads(text)
            records = list(data.items()) if isinstance(data, dict) else list(enumerate(data))
        elif suffix == ".jsonl":
            records = list(enumerate(_jsonl_records(p, text)))
        elif suffix in (".csv", ".tsv"):
            reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
            records = list(enumerate(reader))
        else:
            records = list(enumerate(line.strip() for line in text.splitlines() if line.strip()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as e:
        raise StudySetupError(f"cannot read prompt file {p}: {e}") from None
    prompts = {}
    for pos, rec in records:
        if not isinstance(rec, (str, Mapping)):
            raise StudySetupError(
                f"prompt file {p}, record {pos + 1 if isinstance(pos, int) else pos!r}: expected a prompt "
                f"text or an object with 'prompt', got {type(rec).__name__}"
            )
        rec = {"prompt": rec} if isinstance(rec, str) else dict(rec)
        key = _first({k: str(v) for k, v in rec.items() if v is not None}, ID_KEYS) or str(pos)
        prompts[str(key)] = rec
    return prompts


def _jsonl_records(path: Path, text: str) -> list:
    """The objects of a JSON-lines text; a bad line is named by its number."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise StudySetupError(f"prompt file {path}, line {number}: not JSON ({e.msg})") from None
    return out


def _str_list(value: object) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], str)


def _prompt_key(prompts: Mapping[str, dict], key: str) -> str | None:
    """The prompt-file key an example folder matches: its relative path, its folder name, or its number."""
    name = key.rsplit("/", 1)[-1]
    for k in (key, name):
        if k in prompts:
            return k
    digits = "".join(ch for ch in name if ch in "0123456789")  # not isdigit(): "²" passes it
    if digits and str(int(digits)) in prompts:
        return str(int(digits))
    return None


def _lookup(prompts: Mapping[str, dict], key: str) -> dict | None:
    """Find an example's prompt record: by its key, its folder name, or its number."""
    k = _prompt_key(prompts, key)
    return None if k is None else prompts[k]


def outputs_for_prompts(
    root: str | Path, scan: Mapping[str, Path], prompts: Mapping[str, dict]
) -> dict[str, Path]:
    """Prompt id -> output folder of one method, for every prompt of the prompt file.

    Args:
        root: the method folder (for messages).
        scan: its outputs, as ``scan_method`` returns them.
        prompts: the prompt file, as ``load_prompt_file`` returns it.

    Raises:
        StudySetupError: the folder lacks the output of a prompt, or holds two for one prompt.
    """
    found: dict[str, list[str]] = {}
    for key in scan:
        pid = _prompt_key(prompts, key)
        if pid is not None:
            found.setdefault(pid, []).append(key)
    missing = [pid for pid in prompts if pid not in found]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise StudySetupError(f"method folder {root} has no output for prompt id {missing[0]}{more}")
    for pid, keys in found.items():
        if len(keys) > 1:
            raise StudySetupError(
                f"method folder {root} has {len(keys)} outputs for prompt id {pid}: {', '.join(keys)}"
            )
    if len(scan) > len(prompts):
        log.info(
            "%s: %d output folder(s) not in the prompt file are not shown", root, len(scan) - len(prompts)
        )
    return {pid: scan[found[pid][0]] for pid in prompts}


def _read_meta(folder: Path) -> dict:
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return {}
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StudySetupError(f"unreadable meta.json: {meta_path}: {e}") from None
    return meta if isinstance(meta, dict) else {}


def _example(key: str, folders: list[Path], prompts: Mapping[str, dict]) -> Example:
    """An example's prompts: the prompt file first, then each method's meta.json."""
    records = [r for r in [_lookup(prompts, key)] if r] + [_read_meta(f) for f in folders]
    # meta.json may nest the inputs (e.g. {"inputs": {"prompt": ...}}).
    records += [r["inputs"] for r in list(records) if isinstance(r.get("inputs"), dict)]
    prompt = next((p for p in (_first(r, PROMPT_KEYS) for r in records) if p), "")
    if not prompt:
        raise StudySetupError(
            f"no prompt for example '{key}': neither the prompt file nor {folders[0] / 'meta.json'} has one"
        )
    # The pipeline's meta.json lists one foreground prompt per layer (top-most first).
    records += [
        {"foreground_prompt": r["foreground_prompts"][0]}
        for r in list(records)
        if _str_list(r.get("foreground_prompts"))
    ]
    fg = next((p for p in (_first(r, FG_PROMPT_KEYS) for r in records) if p), "")
    bg = next((p for p in (_first(r, BG_PROMPT_KEYS) for r in records) if p), "")
    return Example(key, prompt, fg, bg)


def build_catalog(
    methods: Mapping[str, str | Path],
    blinder: Blinder,
    prompt_file: str | Path | None = None,
    require_every_prompt: bool = False,
) -> Catalog:
    """Scan every method folder and keep the examples all methods have.

    Args:
        methods: method name -> output root. Names are only ever stored server-side.
        blinder: makes the opaque ids.
        prompt_file: optional prompt file (see ``load_prompt_file``); otherwise meta.json.
        require_every_prompt: with a prompt file, the examples are exactly its prompts (keyed by
            their ids) and every method folder must hold the output of each one.

    Raises:
        StudySetupError: no method, a missing folder, no example common to all methods, a missing
            prompt, an empty prompt file, or (``require_every_prompt``) a prompt a folder lacks.
    """
    if not methods:
        raise StudySetupError("no method folders given: set methods.NAME=DIR for each method to rate")
    roots = {str(name): folder for name, folder in methods.items()}
    scans = {name: scan_method(folder) for name, folder in roots.items()}
    prompts = load_prompt_file(prompt_file) if prompt_file else {}
    if prompt_file and not prompts:
        raise StudySetupError(f"prompt file {prompt_file} holds no prompt")
    if require_every_prompt and prompts:
        scans = {name: outputs_for_prompts(roots[name], scan, prompts) for name, scan in scans.items()}
    common = sorted(set.intersection(*(set(s) for s in scans.values())))
    for name, scan in scans.items():
        if len(scan) > len(common):
            log.warning(
                "method %s: %d example(s) not produced by every method are left out",
                name,
                len(scan) - len(common),
            )
    if not common:
        raise StudySetupError(f"the method folders share no example: {', '.join(map(str, methods.values()))}")
    examples = {k: _example(k, [scans[m][k] for m in scans], prompts) for k in common}
    method_ids = {m: blinder.method_id(m) for m in scans}
    items = {}
    for key in common:
        for m in scans:
            iid = blinder.item_id(key, m)
            items[iid] = Item(iid, key, m, method_ids[m], layer_files(scans[m][key]))
    return Catalog(examples, items, method_ids)
