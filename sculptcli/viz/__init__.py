"""Figures: prior histograms and pair plots (matplotlib, Agg backend, imported lazily)."""
