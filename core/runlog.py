"""A run's metrics: ``metrics.csv`` (long format: step, epoch, time_s, name, value) and TensorBoard."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

HEADER = ["step", "epoch", "time_s", "name", "value"]


class MetricsLog:
    """Appends metric rows; only the main process writes. On resume (``resume_step``), rows the
    killed run wrote after its checkpoint are dropped so that none is duplicated."""

    def __init__(self, out: Path, main: bool, resume_step: int | None):
        self.out, self.main, self.tb = out, main, None
        self.path = out / "metrics.csv"
        if not main:
            return
        if resume_step is not None and self.path.exists():
            self._truncate(resume_step)
        else:
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(HEADER)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out / "tb"))
        except Exception as e:  # tensorboard missing or broken: CSV still works
            print(f"ostinato: TensorBoard logging off ({type(e).__name__})", file=sys.stderr)

    def _truncate(self, step: int) -> None:
        with open(self.path, newline="") as f:
            rows = [r for r in csv.reader(f)]
        keep = [rows[0] if rows else HEADER] + [r for r in rows[1:] if int(r[0]) <= step]
        with open(self.path, "w", newline="") as f:
            csv.writer(f).writerows(keep)

    def write(self, step: int, epoch: int, t: float, metrics: dict[str, float]) -> None:
        if not self.main or not metrics:
            return
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            for k, v in metrics.items():
                w.writerow([step, epoch, f"{t:.2f}", k, f"{float(v):.6g}"])
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(k, float(v), step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
