"""Maze-Hard 30x30 TFDS builder (`tfds build tfds_builders/maze_hard [--config=...]`)."""
