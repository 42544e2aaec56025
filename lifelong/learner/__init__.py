"""The learner: how to learn from a stream, and nothing of run folders, flags or streams.

``Agent`` (``agent.py``) is the loop of one incoming batch: replay draws from its
``ReplayMemory``, one update rule from ``methods/``, the learned prediction controller
(``gate.py``), the weight average (``weight_average.py``), memory writes. The networks are in
``models.py`` (the MLP and CNN) and ``resnet.py``, both on ``backbone.py``'s protocol; the
shared loss and its closed-form gradient in ``losses.py``; La-MAML's learned rates in
``controller.py``; MbPA++'s local adaptation in ``adaptation.py``; the FLOPs meter in
``compute.py``. It takes a ``LearnerConfig`` (``config.py``) and a store, so it can be run,
served or swept by whatever sits above it (docs/architecture.md; a test checks the imports).
"""
