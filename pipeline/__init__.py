"""The lead-scoring KFP v2 pipeline: one component per module in ``components/``, the DAG in
``pipeline.py``. Components are thin wrappers over ``training.steps``."""
