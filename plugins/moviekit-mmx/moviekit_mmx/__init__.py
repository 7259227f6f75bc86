"""moviekit-mmx: the MMX-Trailer-20 method (fine-grained movie genre classification) as moviekit components."""
