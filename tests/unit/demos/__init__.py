"""Unit tests of the runnable demos."""
