"""Training: the labelled frame, the split by time, and the stages fit -> evaluate -> gate -> log of a new version."""

from training.frame import TrainingFrame, build_training_frame, load_training_frame

__all__ = ["TrainingFrame", "build_training_frame", "load_training_frame"]
