"""LatentLab core: data, models, losses, training and run folders. Never imports streamlit."""
