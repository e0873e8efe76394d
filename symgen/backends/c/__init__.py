"""The c backend."""
