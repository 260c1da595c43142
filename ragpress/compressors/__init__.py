"""One module per compression method; each registers itself by name on import."""
