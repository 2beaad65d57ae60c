"""ML force-field corrections: ANI-2x endpoint correction, weights, ML/MM systems."""
