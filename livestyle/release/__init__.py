"""Release phase: the release bundle, its model card and the per-style artifacts it gathers."""
