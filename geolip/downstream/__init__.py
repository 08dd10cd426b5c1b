"""Frozen-codebook pipelines: features, classification, OOD, tokenization."""
