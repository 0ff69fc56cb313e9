"""Run folders: what a run is on disk (folder.py), its checkpoint weights, labels, summaries, weight export and
import, and background jobs (jobs.py for training, process.py for any of our detached processes).

May import: config, device, fileio, registry, models, data. Never training, explore, metrics or the CLI.
"""
