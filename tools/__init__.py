"""Developer tools that read the source: the side-by-side page generator."""
