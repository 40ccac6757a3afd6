"""Unit tests of the routing context's pure decisions."""
