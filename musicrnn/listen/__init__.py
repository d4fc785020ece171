"""Listening studies: blind, randomised listener ratings of rendered clips and their statistics.

`musicrnn-listen make-study` renders MIDI clips to audio under opaque ids (study.py, clips.py),
`musicrnn-listen serve` collects ratings through a web page into SQLite (server.py, store.py,
submission.py), and `musicrnn-listen results` computes the Average Listener Rating (stats.py, report.py).
"""
