"""Serving a story model: continuous batching (`batcher`) under an OpenAI-compatible HTTP API."""
