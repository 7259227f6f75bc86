"""moviekit-movies2scenes: the Movies2Scenes method (scene representations learned from movie metadata) as moviekit components."""
