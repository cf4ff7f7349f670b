"""Offline reference geography: gazetteer places, country outlines, key derivation."""
