"""Data integrity verification: checks per target, baseline and verification runs."""
