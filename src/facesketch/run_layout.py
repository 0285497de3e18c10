"""The run directory's layout, in one place: every file a run writes, by name (old run directories use the same names).

    RUN/config.yaml            the resolved configuration (every field)
    RUN/environment.jsonl      one line per start: versions, machine, device, precision, git revision, command line
    RUN/log.txt                what the run printed, timestamped
    RUN/stats.jsonl            one line per log interval (means), and eval/<metric> lines after evaluations
    RUN/checkpoints/step_NNNNNNNN.pt   verified training states (TrainState)
    RUN/samples/step_NNNNNNNN.png      sample grids (and attention_NNNNNNNN.png)
    RUN/export/model.safetensors       both generators and the model config, for inference
    RUN/report.html            the self-contained run report
    RUN/tb/                    TensorBoard events (when tensorboard is installed)
"""

from __future__ import annotations

import json
from pathlib import Path

CONFIG = "config.yaml"
ENVIRONMENT = "environment.jsonl"
LOG = "log.txt"
STATS = "stats.jsonl"
STATS_PREVIOUS = "stats.prev.jsonl"
CHECKPOINTS = "checkpoints"
SAMPLES = "samples"
EXPORT_DIR = "export"
EXPORT = f"{EXPORT_DIR}/model.safetensors"
REPORT = "report.html"
TENSORBOARD = "tb"


def checkpoint_file(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step_{step:08d}.pt"


def sample_file(run_dir: Path, step: int, kind: str = "step") -> Path:
    """``kind``: 'step' (the sample grid) or 'attention' (G_A's masks)."""
    return Path(run_dir) / SAMPLES / f"{kind}_{step:08d}.png"


def export_file(run_dir: Path) -> Path:
    return Path(run_dir) / EXPORT


def is_run_dir(path: Path) -> bool:
    """A folder holding a run's export or checkpoints."""
    return (Path(path) / EXPORT).is_file() or (Path(path) / CHECKPOINTS).is_dir()


def parse_stats_line(line: str) -> dict | None:
    """One stats.jsonl line, or None for a blank, torn or foreign one (a crash or a full disk mid-write)."""
    try:
        rec = json.loads(line)
    except (json.JSONDecodeError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def read_stats(path: Path) -> list[dict]:
    """The records of a stats.jsonl, skipping torn or undecodable lines (bytes that are not UTF-8 count as such)."""
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_bytes().decode("utf-8", errors="replace")
    return [rec for ln in text.splitlines() if (rec := parse_stats_line(ln)) is not None]
