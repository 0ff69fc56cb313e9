"""Exploring a trained run: encode a data set, traverse latent dims, attribute arithmetic, generate and
interpolate, 2-D embeddings (projection, UMAP background job, colourings), label suggestions and edits of a user's
photo.

May import: config, device, fileio, registry, models, data, runs. Never training or metrics.
"""
