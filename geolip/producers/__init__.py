"""Producers: models that emit codebooks (sphere-solvers and successors)."""
