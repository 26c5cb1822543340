"""sculpt: sculpt autoencoder latent spaces to declared priors with MMD, and measure them."""

__version__ = "0.1.0"
