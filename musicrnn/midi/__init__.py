"""Layer 1: reading and writing MIDI (with limits against hostile files) and rendering it to audio."""
