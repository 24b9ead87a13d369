"""Word vectors once trained: ``word_vectors`` (the table, its queries and its word2vec/gensim exports),
``evaluation`` (analogies and word similarity), ``gensim_model`` (a gensim ``Word2Vec`` that trains on).
"""
