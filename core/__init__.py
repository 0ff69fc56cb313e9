"""LatentLab core: everything but the pictures. Never imports streamlit.

Folders, lowest layer first (a module imports only from its own folder and the layers below it; tests/test_layering.py
enforces this):
  config.py, fileio.py, schema.py, device.py,    settings, atomic files and the untrusted-JSON reader, its
  registry.py                                    schemas, devices, name registries
  recipes.py     measured bundles of settings per kind of data, for the CLI and the Train page (registry)
  models/        networks and model families             (nothing above)
  objectives/    likelihoods, KL, regularisers, schedules (models)
  data/          data sets, decoding, caches, pictures, uploaded photos (config)
  runs/          run folders, status, labels, weights, background jobs (config, data, models)
  explore/       encode, traverse, arithmetic, generate, embeddings, label suggestions, photo edits (runs, data,
                 models)
  metrics/       disentanglement, likelihood, probes, edits, face verification, evaluation (explore, runs, data,
                 models)
  training/      the loop, batches, data feed, speed-ups, distributed (runs, objectives, data, models)
  cli/           `python -m core ...` on top of all of them (parser and errors; train and encode; the rest)
"""
