"""ARC-AGI TFDS builder (`tfds build tfds_builders/arc_agi --manual_dir=...`)."""
