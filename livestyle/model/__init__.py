"""Model phase: the transformer network, its losses and loss network, training data and the training loops."""
