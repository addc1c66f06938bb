"""Test-only helpers shared by several test files (fake run directories, ...)."""
