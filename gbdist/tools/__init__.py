"""Developer commands outside the core pipeline: ``bench`` (how fast each stage runs)."""
