"""Training: the labelled frame, the split by time, fit, gate, model card and the pipeline that registers a model."""

from training.frame import TrainingFrame, build_training_frame, load_training_frame

__all__ = ["TrainingFrame", "build_training_frame", "load_training_frame"]
