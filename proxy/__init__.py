"""Footfall's proxy package: the reverse proxy, event building, publishing, admin, CLI."""
