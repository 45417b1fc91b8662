"""Table 3 aggregation on a constructed study database, checked against hand-computed numbers."""

import json
import math

import pytest
from PIL import Image

from layeringdiff.study.aggregate import bootstrap_participants, summarize, t_interval
from layeringdiff.study.storage import RatingStore, read_ratings

T_975 = {1: 12.706204736, 2: 4.302652730, 3: 3.182446305, 5: 2.570581836}  # Student-t tables


@pytest.fixture
def db(tmp_path):
    """Two methods, three participants; only foreground/text_alignment and composite/image_quality rated."""
    store = RatingStore(tmp_path / "study.db")
    store.register({"ours": "m1", "germer": "m2"}, {"t1": "p1", "t2": "p2", "t3": "p3"})
    # ours, FG text alignment: p1 -> 3, 4 ; p2 -> 5, 4   (mean 4, sd sqrt(2/3), n=4)
    store.save(
        "t1",
        [("e1", "m1", "foreground", "text_alignment", 3), ("e2", "m1", "foreground", "text_alignment", 4)],
    )
    store.save(
        "t2",
        [("e1", "m1", "foreground", "text_alignment", 5), ("e2", "m1", "foreground", "text_alignment", 4)],
    )
    # germer, FG text alignment: p1 -> 2 ; p2 -> 1 ; p3 -> 3   (mean 2, sd 1, n=3)
    store.save("t1", [("e1", "m2", "foreground", "text_alignment", 2)])
    store.save("t2", [("e1", "m2", "foreground", "text_alignment", 1)])
    store.save("t3", [("e1", "m2", "foreground", "text_alignment", 3)])
    # ours, composite image quality: a single rating (no interval).
    store.save("t3", [("e1", "m1", "composite", "image_quality", 5)])
    # A changed answer replaces the earlier one (one row per rating).
    store.save("t3", [("e1", "m1", "composite", "image_quality", 2)])
    return store.path


def cell(cells, layer, crit, method):
    return next(c for c in cells if (c["layer"], c["criterion"], c["method"]) == (layer, crit, method))


def test_means_and_t_intervals_match_hand_computation(db):
    ratings = read_ratings(db)
    assert len(ratings) == 8
    cells = summarize(ratings, ci="t")
    assert len(cells) == 3 * 2 * 2
    ours = cell(cells, "foreground", "text_alignment", "ours")
    half = T_975[3] * math.sqrt(2 / 3) / math.sqrt(4)
    assert ours["mean"] == pytest.approx(4.0)
    assert (ours["ci_low"], ours["ci_high"]) == pytest.approx((4 - half, 4 + half), abs=1e-6)
    assert (ours["n_ratings"], ours["n_participants"]) == (4, 2)
    germer = cell(cells, "foreground", "text_alignment", "germer")
    half = T_975[2] * 1.0 / math.sqrt(3)
    assert germer["mean"] == pytest.approx(2.0)
    assert (germer["ci_low"], germer["ci_high"]) == pytest.approx((2 - half, 2 + half), abs=1e-6)
    assert (germer["n_ratings"], germer["n_participants"]) == (3, 3)
    single = cell(cells, "composite", "image_quality", "ours")
    assert single["mean"] == 2.0 and math.isnan(single["ci_low"]) and single["n_ratings"] == 1
    empty = cell(cells, "background", "image_quality", "germer")
    assert math.isnan(empty["mean"]) and empty["n_ratings"] == 0


def test_t_interval_on_textbook_numbers():
    lo, hi = t_interval([1, 2, 3, 4, 5, 6], 0.95)  # mean 3.5, sd sqrt(3.5)
    half = T_975[5] * math.sqrt(3.5) / math.sqrt(6)
    assert (lo, hi) == pytest.approx((3.5 - half, 3.5 + half), abs=1e-6)
    lo, hi = t_interval([4, 4, 4], 0.95)
    assert (lo, hi) == (4.0, 4.0)


def test_bootstrap_over_participants():
    # Resampling two participants gives the pooled means 1 (both p1), 4 (mixed: 16/4) or 5 (both p2),
    # so the 95% percentile interval is exactly [1, 5].
    assert bootstrap_participants({"p1": [1], "p2": [5, 5, 5]}, 0.95, 2000, seed=0) == (1.0, 5.0)
    # Participants who agree give a zero-width interval; a single participant gives none.
    assert bootstrap_participants({"p1": [3, 3], "p2": [3], "p3": [3]}, 0.95, 500, seed=1) == (3.0, 3.0)
    assert all(math.isnan(x) for x in bootstrap_participants({"p1": [1, 5]}))
    a = bootstrap_participants({"p1": [1, 2], "p2": [5], "p3": [3, 4, 4]}, 0.9, 1000, seed=3)
    assert a == bootstrap_participants({"p3": [3, 4, 4], "p2": [5], "p1": [1, 2]}, 0.9, 1000, seed=3)
    assert 1 <= a[0] < a[1] <= 5


def test_summarize_refuses_bad_requests(db):
    ratings = read_ratings(db)
    with pytest.raises(ValueError, match="no ratings for method.*nope"):
        summarize(ratings, methods=["ours", "nope"])
    with pytest.raises(ValueError, match="study.ci must be"):
        summarize(ratings, ci="wald")
    with pytest.raises(ValueError, match="holds no ratings"):
        summarize([])
    with pytest.raises(FileNotFoundError, match="study database not found"):
        read_ratings(db.parent / "missing.db")


def test_evaluate_table3_writes_the_table_and_chart(db, tmp_path, capsys, compose_config):
    from layeringdiff.tasks.evaluate import evaluate

    out = tmp_path / "run"
    overrides = ["eval=table3", f"study.db={db}", "study.methods=[ours,germer]", "logger=csv"]
    cfg = compose_config("evaluate", tmp_path, overrides)
    result = evaluate(cfg)
    assert result["table3/foreground/text_alignment/ours"] == pytest.approx(4.0)
    assert result["table3/foreground/text_alignment/germer"] == pytest.approx(2.0)
    assert result["n_ratings"] == 8 and result["n_participants"] == 3
    table = json.loads((out / "table3.json").read_text())
    assert [(r["layer"], r["criterion"]) for r in table["rows"]] == [
        (layer, crit) for layer in ("FG", "BG", "Composite") for crit in ("Text Align.", "Image Qual.")
    ]
    fg_ta = table["rows"][0]
    half = T_975[3] * math.sqrt(2 / 3) / 2
    assert fg_ta["ours_ci_high"] == pytest.approx(4 + half) and fg_ta["germer_n_participants"] == 3
    md = (out / "table3.md").read_text()
    assert f"| FG | Text Align. | 4.00 [{4 - half:.2f}, {4 + half:.2f}] (n=4, p=2) |" in md
    assert "| Composite | Image Qual. | 2.00 (n=1, p=1) | - (n=0, p=0) |" in md
    assert md in capsys.readouterr().out
    assert "ours_ci_low" in (out / "table3.csv").read_text().splitlines()[0]
    logged = list(out.rglob("metrics.csv"))  # logged like the other tables
    assert logged and "table3/ours/foreground/text_alignment/mean" in logged[0].read_text()
    with Image.open(out / "table3.png") as chart:
        assert chart.size == (960, 480)
        assert len(chart.convert("RGB").getcolors(1 << 16)) > 3  # bars drawn, not a blank page


def test_table3_caption_names_the_interval_level_used(tmp_path):
    from layeringdiff.study.aggregate import summarize, write_table3

    ratings = [
        dict(participant=p, method="ours", layer="foreground", criterion="text_alignment", score=s)
        for p, s in (("a", 3), ("b", 5))
    ]
    cells = summarize(ratings, confidence=0.9)
    write_table3(cells, ["ours"], tmp_path, chart=False, confidence=0.9)
    assert "[90% CI]" in (tmp_path / "table3.md").read_text()
