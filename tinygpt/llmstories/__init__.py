"""Synthetic stories from any OpenAI-compatible LLM server, the TinyStories way."""
