"""ncf_lib: Neural Collaborative Filtering (He et al., WWW 2017) in PyTorch, done properly."""

__version__ = "0.1.0"
