"""The synthetic local authority: simulated children's histories written as real CIN census returns."""

from synthetic.biases import BIAS_KINDS, PlantedBiases
from synthetic.cohort import CohortSummary, generate_cohort
from synthetic.simulate import TruthRow, Window, simulate_child

__all__ = ["BIAS_KINDS", "CohortSummary", "PlantedBiases", "TruthRow", "Window", "generate_cohort", "simulate_child"]
