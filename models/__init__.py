"""The model bundle: score, calibrate, band and check cases; ``registry`` is the only MLflow code."""

from models.bundle import BAND_NAMES, Bands, Calibrator, Reference, RiskModel

__all__ = ["BAND_NAMES", "Bands", "Calibrator", "Reference", "RiskModel"]
