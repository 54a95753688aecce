"""Adapters that put the library's REPO and ADAPO inside other trainers (optional extras)."""
