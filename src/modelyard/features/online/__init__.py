"""The online store: the values and recent events served at request time."""
