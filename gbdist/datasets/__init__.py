"""Data sets gbdist knows by name: the Olmsted Ni survey (labels and structures)."""
