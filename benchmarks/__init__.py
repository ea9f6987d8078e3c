"""benchmarks: the one place that measures a model, on this machine in every format or against a device profile,
and answers "which variant and format meet the frame and size budget on my device, at what accuracy"
(python -m benchmarks.run / compare / calibrate). One-off studies live in the repository's experiments/."""
from __future__ import annotations

import sys


def moved_to_experiments(study: str) -> None:
    """The old `python -m benchmarks.<study>` of a study that moved to experiments/: one line naming the new
    spelling, exit status 2."""
    print(f"python -m benchmarks.{study}: error: moved: a study, not part of the installed toolkit; in a checkout "
          f"of the repository: python -m experiments.{study}", file=sys.stderr)
    sys.exit(2)
