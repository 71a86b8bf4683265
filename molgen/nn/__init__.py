"""Neural-network building blocks: dense molecule blocks, kernel bases, the separable fiber convolution."""
