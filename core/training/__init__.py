"""Training: the loop (loop.py), batches by index (batches.py), the data feed onto the device (feed.py), step
speed-ups (speed.py) and torchrun support (distributed.py).

May import: config, device, fileio, registry, models, objectives, data, runs. Nothing but the CLI imports training.
"""
