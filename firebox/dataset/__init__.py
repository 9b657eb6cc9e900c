"""The dataset exporter: training examples from the training log (see docs/training-log.md)."""

from __future__ import annotations

from firebox.dataset.export import LABELS, ExportSummary, export
from firebox.dataset.reader import read_logs

__all__ = ["LABELS", "ExportSummary", "export", "read_logs"]
