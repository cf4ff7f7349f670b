"""Countries and first-level regions: polygons, derivation, admin counts, published counts."""
