"""``evaluate(cfg)``: run the evaluation that ``cfg.eval.runner`` names in the run folder.

Each ``configs/eval/<name>.yaml`` sets ``eval.runner`` to a dotted path of a function
``run(cfg) -> dict`` (Table 1, 2, 3, 4, batch generation, run comparison). The runner gets the
whole composed config, writes its files into ``cfg.paths.output_dir`` and returns the headline
numbers. Re-running with the same run folder (``hydra.run.dir=<old run>``) resumes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from layeringdiff.errors import ConfigError
from layeringdiff.tasks.common import save_resolved_config

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict:
    """Dispatch to ``cfg.eval.runner`` after writing the resolved config into the run folder.

    Returns:
        What the runner returns (flat ``{name: number}`` for the tables).

    Raises:
        ConfigError: ``eval.runner`` is missing or does not name a function.
    """
    from hydra.utils import get_method

    runner = OmegaConf.select(cfg, "eval.runner")
    if not runner:
        raise ConfigError("evaluate: no eval.runner set; pick an evaluation, e.g. `evaluate.py eval=table4`")
    try:
        run = get_method(runner)
    except Exception as e:
        raise ConfigError(f"evaluate: eval.runner={runner} is not an importable function ({e})") from None
    from layeringdiff.evaluation.sharding import check_supported

    check_supported(cfg, runner)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    # Tests compose with return_hydra_config=True; the hydra node is not part of the run's config.
    save_resolved_config(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), output_dir)
    if cfg.get("seed") is not None:
        import torch

        torch.manual_seed(int(cfg.seed))
    log.info("Evaluation <%s> into %s", runner, output_dir)
    started = time.time() - 1.0  # file systems with coarse time stamps
    result = run(cfg)
    print(outputs_report(output_dir, started), flush=True)
    return result


def outputs_report(output_dir: Path, since: float) -> str:
    """The tables (``*.md``) written since ``since`` in full, then every file and folder written.

    Folders (e.g. one per prompt) are listed once with their count of new files.
    """
    skip = {"config.yaml", ".hydra"}
    new = sorted(
        p
        for p in output_dir.rglob("*")
        if p.is_file()
        and p.stat().st_mtime >= since
        and not skip & set(p.relative_to(output_dir).parts)
        and p.suffix != ".log"
    )
    lines = [p.read_text().rstrip() + "\n" for p in new if p.suffix == ".md" and p.parent == output_dir]
    entries: dict[str, int] = {}
    for p in new:
        top = p.relative_to(output_dir).parts[0]
        entries[top] = entries.get(top, 0) + 1
    lines.append(f"Wrote {len(new)} file(s) into {output_dir}:")
    for name, count in sorted(entries.items()):
        folder = (output_dir / name).is_dir()
        lines.append(f"  {name}/ ({count} files)" if folder else f"  {name}")
    return "\n".join(lines)
