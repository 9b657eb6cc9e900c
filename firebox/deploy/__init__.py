"""Deployment helpers that run inside the Firebox image (the Docker API proxy)."""
