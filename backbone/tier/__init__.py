"""Tier switching: bootstrap -> institutional and back (docs/tiers.md)."""
