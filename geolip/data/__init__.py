"""Offline, deterministic datasets for tests and demos."""
