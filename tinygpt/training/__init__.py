"""Training: `train(...)` (the loop), its settings (`TrainConfig`), checkpoints and the run
directory, evaluation (loss, bits per byte) and the loss plot."""

from tinygpt.training.loop import TrainConfig, TrainingDiverged, load_config_file, parse_duration, train

__all__ = ["TrainConfig", "TrainingDiverged", "load_config_file", "parse_duration", "train"]
