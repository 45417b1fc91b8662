"""The whole reproduction chain (experiments/smoke.sh) with tiny models and synthetic data on CPU.

data -> shards -> latent cache -> FBDD fg/bg -> FBDD-output cache -> FAN/BAN -> generate ->
Tables 1, 2, 4. About 2-4 minutes on 2 CPU cores; part of the default suite on purpose.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_chain_produces_every_table(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    result = subprocess.run(
        ["bash", str(ROOT / "experiments" / "smoke.sh"), str(tmp_path / "smoke")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    (tmp_path / "smoke.log").write_text(result.stdout + result.stderr)
    ev = tmp_path / "smoke" / "eval"
    for table in ("table1", "table2", "table4"):
        for suffix in ("md", "csv", "json"):
            assert (ev / table / f"{table}.{suffix}").is_file(), f"{table}.{suffix}"
    assert (ev / "table2" / "table2_histograms.png").is_file()
    assert (ev / "table4" / "table4_figure.png").is_file()
    samples = sorted(p.name for p in (ev / "generate" / "samples").iterdir() if p.is_dir())
    assert samples == ["n0000", "n0001"]  # the first two natural prompts of quick16
    t4 = json.loads((ev / "table4" / "table4.json").read_text())
    assert [r["method"] for r in t4["rows"]] == ["layeringdiff", "germer", "germer_inpaint", "copy"]
    for row in t4["rows"]:
        assert row["count"] + row["failed"] == 4 and row["count"] > 0, row  # (the runner also exits 1)
        assert row["fg_sad"] is None or abs(row["fg_sad"] - row["fg_mad"] * 64 * 64 * 3 / 1e6) < 1e-9
    t1 = json.loads((ev / "table1" / "table1.json").read_text())["rows"][0]
    assert t1["count"] == 2 and t1["fg_fid"] >= 0
    assert t1.get("fg_miou") is None or 0 <= t1["fg_miou"] <= 100
