"""Measuring generated music: novelty and copying, musical statistics, figures, audio and the report."""
