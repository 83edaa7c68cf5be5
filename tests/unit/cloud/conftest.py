"""Fixtures of the cloud tests (defined in ``cloud_helpers``, shared by name here)."""

from cloud_helpers import clock, cloud, demo_pki, seeded_database, side

__all__ = ["clock", "cloud", "demo_pki", "seeded_database", "side"]
