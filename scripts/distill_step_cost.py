"""Moved: python -m experiments.distill_step_cost (a study, in experiments/)."""
import sys

sys.exit("scripts/distill_step_cost.py: error: moved: python -m experiments.distill_step_cost")
