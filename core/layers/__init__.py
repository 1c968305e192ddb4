"""Sequence layers of the core. Importing this package registers every layer."""
