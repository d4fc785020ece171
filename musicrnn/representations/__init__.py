"""Layer 2: music <-> tensors. Note events (pitch, step, duration) and binary piano rolls, each behind the
`Representation` protocol (base.py). No training code, no Lightning, no Hydra."""
