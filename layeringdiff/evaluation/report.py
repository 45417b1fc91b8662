"""Result tables: a markdown table laid out like the paper's, plus CSV and JSON, written atomically.

Every evaluation runner (Tables 1-4) ends with :func:`write_tables`; ``eval=compare`` reads the
JSON files back with :func:`read_table` and renders several runs side by side.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from layeringdiff.errors import ConfigError
from layeringdiff.files import atomic_write_bytes

Column = str | tuple[str, str]


def _columns(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column] | None) -> list[tuple[str, str]]:
    if columns is None:
        keys: list[str] = []
        for row in rows:
            keys += [k for k in row if k not in keys and not k.endswith("_std")]
        columns = keys
    return [(c, c) if isinstance(c, str) else (str(c[0]), str(c[1])) for c in columns]


def _fmt(value: Any, precision: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            return "-"
        return f"{value:.{precision}f}" if isinstance(value, float) else str(value)
    return str(value)


def format_markdown(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column] | None = None,
    title: str | None = None,
    precision: int = 2,
    notes: str | None = None,
) -> str:
    """Render rows as a GitHub markdown table; a value ``k`` with ``k_std`` in the row shows as ``m ± s``."""
    cols = _columns(rows, columns)
    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(h for _, h in cols) + " |")
    lines.append("|" + "|".join(":---" if i == 0 else "---:" for i in range(len(cols))) + "|")
    for row in rows:
        cells = []
        for key, _ in cols:
            cell = _fmt(row.get(key), precision)
            if row.get(f"{key}_std") is not None and cell != "-":
                cell += f" ± {_fmt(row[f'{key}_std'], precision)}"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += ["", notes]
    return "\n".join(lines) + "\n"


def write_tables(
    rows: Sequence[Mapping[str, Any]],
    output_dir: str | Path,
    name: str,
    columns: Sequence[Column] | None = None,
    title: str | None = None,
    precision: int = 2,
    notes: str | None = None,
) -> dict[str, Path]:
    """Write ``{name}.md``, ``{name}.csv`` and ``{name}.json`` into ``output_dir`` (each atomically).

    Args:
        rows: one mapping per table row (e.g. one per method), e.g.
            ``{"method": "Ours", "fg_fid": 12.3, "fg_fid_std": 0.4}``.
        output_dir: the run folder.
        name: file stem, e.g. ``"table1"``.
        columns: ``key`` or ``(key, header)`` per column, in order; ``None`` uses the rows' keys.
            Keys ending in ``_std`` are shown as ``mean ± std`` next to their ``key`` in markdown
            and kept as their own columns in CSV/JSON.
        title: heading above the markdown table (e.g. the paper's caption).
        precision: decimals in markdown (CSV/JSON keep full precision).
        notes: free text under the markdown table (arrows, units, reference sets).

    Returns:
        ``{"md": path, "csv": path, "json": path}``.
    """
    out = Path(output_dir)
    cols = _columns(rows, columns)
    csv_keys = [k for k, _ in cols]
    for row in rows:
        csv_keys += [k for k in row if k not in csv_keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=csv_keys, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in csv_keys})
    payload = {
        "name": name,
        "title": title,
        "columns": [{"key": k, "header": h} for k, h in cols],
        "rows": [dict(r) for r in rows],
        "notes": notes,
    }
    paths = {"md": out / f"{name}.md", "csv": out / f"{name}.csv", "json": out / f"{name}.json"}
    atomic_write_bytes(paths["md"], format_markdown(rows, cols, title, precision, notes).encode())
    atomic_write_bytes(paths["csv"], buf.getvalue().encode())
    atomic_write_bytes(paths["json"], (json.dumps(payload, indent=2, default=float) + "\n").encode())
    return paths


def read_table(path: str | Path) -> dict[str, Any]:
    """Load a table written by :func:`write_tables` (the ``.json`` file, or its run folder + name)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: not a readable result table ({e.__class__.__name__})") from None
