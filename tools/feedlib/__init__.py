"""The parts of tools/feed.py (which imports them from its own directory): standard library only."""
