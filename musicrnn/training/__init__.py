"""Layer 4: training. The one LightningModule (`SequenceModel`) and the model variants that build it
(`models.py`), its metric and checkpoint callbacks, safe checkpoint files, ensembles of trained checkpoints."""
