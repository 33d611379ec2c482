"""The synthetic local authority: simulated children's histories written as real CIN census returns."""

from synthetic.cohort import CohortSummary, generate_cohort
from synthetic.simulate import TruthRow, Window, simulate_child

__all__ = ["CohortSummary", "TruthRow", "Window", "generate_cohort", "simulate_child"]
