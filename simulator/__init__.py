"""Scanner simulator: a physics-based forward model with ground truth, streamed like a real scanner."""
