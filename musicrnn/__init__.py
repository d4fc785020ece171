"""musicrnn: music generation with recurrent networks, on PyTorch Lightning and Hydra."""

__version__ = "0.1.0"
