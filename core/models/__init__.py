"""Models: one encoder/decoder family (networks.py); VAE and ModVAE clamping on top."""
