"""moviekit-movieclip: MovieCLIP (visual scene recognition in movies) as moviekit components.

* :mod:`.taxonomy`: the 179-label MovieCLIP scene taxonomy (package data) and a loader for user taxonomies.
* :mod:`.scoring`: the prompt templates and the CLIPSceneScore / top-k / multi-label rules, as plain functions.
* :mod:`.labeler`: ``movieclip_clip``, CLIP zero-shot labelling of shots.
* :mod:`.hierarchy`: MiniLM-L6-v2 label embeddings clustered by affinity propagation (``movieclip_hierarchy``).
"""
