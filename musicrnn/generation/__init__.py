"""Layer 5: generation. Sampling loops (torch and compiled), primers, writing samples as MIDI."""
