"""Pure tensor math: projective geometry, Procrustes and alignment, metrics, null models.

Nothing here reads files or knows about models; inputs and outputs are tensors.
"""
