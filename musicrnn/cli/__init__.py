"""Layer 7: the command lines (train, generate, evaluate, plot, sweep report, listen) and the config checks.
Only this layer sees Hydra's DictConfig; it hands plain Python values to everything below."""
