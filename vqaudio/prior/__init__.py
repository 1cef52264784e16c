"""A token prior over a codec's residual codes: likelihoods, sampling and entropy coding."""
