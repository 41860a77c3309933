"""Training: `train(...)` (the loop), its settings (`TrainConfig`), the run directory and its
checkpoints, data-parallel processes, evaluation (loss, bits per byte) and the loss plot."""

from tinygpt.training.config import TrainConfig, load_config_file, parse_duration
from tinygpt.training.loop import TrainingDiverged, train

__all__ = ["TrainConfig", "TrainingDiverged", "load_config_file", "parse_duration", "train"]
