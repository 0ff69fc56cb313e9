"""Exploring a trained run: encode a data set, traverse latent dims, attribute arithmetic, generate and
interpolate, 2-D embeddings (projection, UMAP background job, colourings) and label suggestions.

May import: config, device, fileio, registry, models, data, runs. Never training or metrics.
"""
