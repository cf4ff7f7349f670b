"""Blueprints and HTTP concerns of the web app."""
