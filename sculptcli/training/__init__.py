"""Training: the loop (trainer), its periodic held-out evaluation, and the terminal reporters."""
