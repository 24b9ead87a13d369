"""The noise-contrastive family and the exact softmax, behind one interface.

``losses`` (binary NCE, negative sampling, ranking NCE = InfoNCE, the full softmax: each a function of the
scores of the target and of k noise words), ``partition`` (exact log Z and its importance-sampled estimate),
``chunked_softmax`` (the exact softmax over a large vocabulary without a (B, V) tensor), ``mi_bound`` (the
InfoNCE bound on mutual information), ``theory`` (exact expected losses, what each objective converges to).
"""
