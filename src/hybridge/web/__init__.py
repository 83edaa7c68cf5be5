"""Shared web pieces: templates, admin authentication, error mapping."""
