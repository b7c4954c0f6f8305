"""Training side of leadscore: data, preprocessing, training, evaluation and the command line."""
