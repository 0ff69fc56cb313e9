"""One model family per file; each registers itself in core.models.family.FAMILIES when imported."""
