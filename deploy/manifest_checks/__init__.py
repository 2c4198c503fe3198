"""The checks deploy/validate.py runs on the manifests in deploy/, one
module per numbered check of its docstring: crds (1), models (2),
admission (3), consistency (4), datasets (5); documents holds what they
share (a manifest's documents, problems, field paths, containers)."""
