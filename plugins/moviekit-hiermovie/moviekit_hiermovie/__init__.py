"""moviekit-hiermovie: self-supervised pre-training of a hierarchical movie model (contrastive low-level
backbone, mask-prediction contextualizer) evaluated with VidSitu's verb, relation and role heads."""

__version__ = "0.1.0"
