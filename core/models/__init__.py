"""Networks and model families: the shared conv encoder/decoder (networks.py, with ArchConfig and its presets), the
VAE on top of it (vae.py), ModVAE's group clamping (modvae.py), and the family registry (family.py) that the files
in families/ fill, one family a file.

May import: settings, registry. Nothing else in core (config imports models, not the reverse).
"""
import importlib
import pkgutil

from core.models import families as _families
from core.models.family import FAMILIES

# Every file in families/ registers one family: adding a family is adding a file.
for _module in pkgutil.iter_modules(_families.__path__):
    importlib.import_module(f"{_families.__name__}.{_module.name}")
FAMILIES.sort(key=lambda f: f.order)
