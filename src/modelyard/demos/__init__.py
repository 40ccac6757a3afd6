"""Runnable reference projects; they use only modelyard's public API."""
