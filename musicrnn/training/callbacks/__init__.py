from musicrnn.training.callbacks.metrics import Metrics
from musicrnn.training.callbacks.weight_averaging import EMAWeights

__all__ = ["EMAWeights", "Metrics"]
