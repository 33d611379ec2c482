"""Side-by-side performance runs that print figures and ratios."""
