"""What each dashboard page shows (JSON-ready documents) and the actions it offers."""
