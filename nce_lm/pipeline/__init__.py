"""The corpus pipeline, in the order data flows through it.

``datasets`` (registered corpora and their splits) -> ``corpus`` (streaming, tokenized chunks of any size)
-> ``vocab`` (words with counts) -> ``token_cache`` (token ids on disk) -> ``noise`` (q(w) ∝ count^α and its
alias sampler, frequent-word subsampling). ``sentences`` trains from in-memory token lists; ``synth`` writes
corpora drawn from a known model, whose exact perplexity floor is known.
"""
