"""Reports: figures (plotting), explain, and run folders (output)."""
