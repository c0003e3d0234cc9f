"""Reproductions of papers' experiments: each module trains what a figure
needs (through the loops below it), draws the figure and writes its numbers.
docs/reproductions.md sets them beside the papers' claims."""
