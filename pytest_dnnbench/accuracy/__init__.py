"""Top-1/Top-5 accuracy with each model's own preprocessing, offline."""
