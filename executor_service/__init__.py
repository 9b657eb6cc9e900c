"""The executor service: workspaces, shell sessions and streaming Execute."""
