"""Unit tests of the pipelines context: gate, triggers, steps, the loop on memory stores."""
