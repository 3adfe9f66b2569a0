"""Using a trained model: folding in new users, similar items, exporting the embeddings.
Imports the core; the core never imports this."""
